package onnx

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/png"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-ml/shoal/internal/backend/onnx/onnxpb"
	"github.com/shoal-ml/shoal/internal/tensor"
)

func u8s(data []byte) *Value {
	return &Value{Kind: KindTensor, Tensor: tensor.Tensor{DType: tensor.Uint8, Shape: []int64{int64(len(data))}, Data: data}}
}

func TestImageDecoder(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	img.SetNRGBA(0, 0, color.NRGBA{R: 255, A: 255})
	img.SetNRGBA(1, 0, color.NRGBA{R: 10, G: 20, B: 30, A: 255})
	var pngData bytes.Buffer
	if err := png.Encode(&pngData, img); err != nil {
		t.Fatal(err)
	}
	pnm := append([]byte("P6\n# two pixels\n2 1\n255\n"), 255, 0, 0, 10, 20, 30)
	str := onnxpb.AttributeProto_STRING
	format := func(f string) *Attrs {
		return NewAttrs([]*onnxpb.AttributeProto{{Name: proto.String("pixel_format"), Type: &str, S: []byte(f)}})
	}
	tests := []struct {
		name   string
		data   []byte
		format string
		want   []uint8
		shape  []int64
	}{
		{"png rgb", pngData.Bytes(), "RGB", []uint8{255, 0, 0, 10, 20, 30}, []int64{1, 2, 3}},
		{"png bgr", pngData.Bytes(), "BGR", []uint8{0, 0, 255, 30, 20, 10}, []int64{1, 2, 3}},
		// PIL's luma: (255*19595 + 0x8000) >> 16 = 76; (10*19595 + 20*38470 + 30*7471 + 0x8000) >> 16 = 18.
		{"png grayscale", pngData.Bytes(), "Grayscale", []uint8{76, 18}, []int64{1, 2, 1}},
		{"pnm rgb", pnm, "RGB", []uint8{255, 0, 0, 10, 20, 30}, []int64{1, 2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runOp(t, "ImageDecoder", 20, format(tt.format), u8s(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			if got := out.Tensor.Data.([]uint8); !reflect.DeepEqual(got, tt.want) || !reflect.DeepEqual(out.Tensor.Shape, tt.shape) {
				t.Errorf("ImageDecoder = %v %v, want %v %v", out.Tensor.Shape, got, tt.shape, tt.want)
			}
		})
	}
	for _, tt := range []struct {
		name string
		data []byte
		want error
	}{
		{"truncated png", pngData.Bytes()[:20], ErrInvalidInput},
		{"truncated bmp", []byte("BM\x00\x00"), ErrInvalidInput},
		{"huge pnm", []byte("P6 100000 100000 255\n\x00"), ErrInvalidInput},
		{"unknown format", []byte("GIF89a"), ErrUnsupported},
	} {
		if _, err := runOp(t, "ImageDecoder", 20, nil, u8s(tt.data)); !errors.Is(err, tt.want) {
			t.Errorf("ImageDecoder(%s) error = %v, want %v", tt.name, err, tt.want)
		}
	}
}
