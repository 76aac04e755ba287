package python

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/shoal-ml/shoal/internal/tensor"
)

func TestTensorFrameRoundTrip(t *testing.T) {
	ts := []*tensor.Tensor{
		{Name: "x", DType: tensor.FP32, Shape: []int64{2, 2}, Data: []float32{1, 2, 3, 4}},
		{Name: "ids", DType: tensor.Int64, Shape: []int64{3}, Data: []int64{-1, 0, 1 << 62}},
		{Name: "ok", DType: tensor.Bool, Shape: []int64{1}, Data: []bool{true}},
		{Name: "half", DType: tensor.FP16, Shape: []int64{1}, Data: []uint16{0x3c00}},
		{Name: "s", DType: tensor.Bytes, Shape: []int64{2, 1}, Data: [][]byte{[]byte("setosa"), {}}},
		{Name: "scalar", DType: tensor.FP64, Shape: []int64{}, Data: []float64{2.5}},
		{Name: "empty", DType: tensor.Uint8, Shape: []int64{0, 3}, Data: []uint8{}},
	}
	frame, err := appendTensorFrame(nil, kindResult, ts)
	if err != nil {
		t.Fatal(err)
	}
	kind, body, _, err := readFrame(bytes.NewReader(frame), nil)
	if err != nil || kind != kindResult {
		t.Fatalf("readFrame = %d, %v", kind, err)
	}
	got, err := decodeTensors(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ts) {
		t.Fatalf("round trip: %d tensors, want %d", len(got), len(ts))
	}
	for i := range ts {
		g, w := got[i], ts[i]
		if g.Name != w.Name || g.DType != w.DType || !slices.Equal(g.Shape, w.Shape) || !bytes.Equal(g.AppendRaw(nil), w.AppendRaw(nil)) {
			t.Errorf("round trip: got %+v, want %+v", got[i], ts[i])
		}
	}
}

func TestDecodeTensorsMalformed(t *testing.T) {
	good, _ := appendTensorFrame(nil, kindResult, []*tensor.Tensor{{Name: "x", DType: tensor.FP32, Shape: []int64{2}, Data: []float32{1, 2}}})
	body := good[5:]
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"count only", []byte{1, 0}},
		{"truncated", body[:len(body)-1]},
		{"trailing", append(append([]byte{}, body...), 0)},
		{"bad type", func() []byte { b := append([]byte{}, body...); b[5] = 99; return b }()},
		{"size mismatch", func() []byte { b := append([]byte{}, body...); b[7] = 3; return b }()},
		{"huge data length", func() []byte { b := append([]byte{}, body...); b[len(b)-9] = 0xff; return b }()},
	}
	for _, tt := range tests {
		if _, err := decodeTensors(tt.b); !errors.Is(err, errFrame) {
			t.Errorf("%s: decodeTensors() = %v, want errFrame", tt.name, err)
		}
	}
}

func FuzzDecodeTensors(f *testing.F) {
	seed, _ := appendTensorFrame(nil, kindResult, []*tensor.Tensor{
		{Name: "x", DType: tensor.FP32, Shape: []int64{2}, Data: []float32{1, 2}},
		{Name: "s", DType: tensor.Bytes, Shape: []int64{1}, Data: [][]byte{[]byte("a")}},
	})
	f.Add(seed[5:])
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, err := decodeTensors(b)
		if err != nil {
			if !errors.Is(err, errFrame) {
				t.Fatalf("decodeTensors error %v does not wrap errFrame", err)
			}
			return
		}
		// What decodes encodes and decodes to the same tensors (the bytes
		// may differ: a BOOL byte 2 decodes as true, encodes as 1).
		again, err := appendTensorFrame(nil, kindResult, ts)
		if err != nil {
			t.Fatal(err)
		}
		ts2, err := decodeTensors(again[5:])
		if err != nil || len(ts2) != len(ts) {
			t.Fatalf("re-decoding %x: %d tensors, %v", again[5:], len(ts2), err)
		}
		for i := range ts {
			if !bytes.Equal(ts[i].AppendRaw(nil), ts2[i].AppendRaw(nil)) || !slices.Equal(ts[i].Shape, ts2[i].Shape) || ts[i].Name != ts2[i].Name {
				t.Fatalf("tensor %d of %x changed in a round trip", i, b)
			}
		}
	})
}
