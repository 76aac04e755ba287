package onnx

import (
	"context"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-ml/shoal/internal/backend/onnx/onnxpb"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// FuzzParseSubgraphs checks that malformed models with graph attributes
// (captures, nested scopes, Loop and Scan bodies of the wrong arity) give
// errors, never panics, and that a model that loads runs (or fails) on
// small inputs without panicking.
func FuzzParseSubgraphs(f *testing.F) {
	for _, g := range []*onnxpb.GraphProto{ifModel(), loopModel(2)} {
		data, err := proto.Marshal(&onnxpb.ModelProto{
			IrVersion:   proto.Int64(8),
			OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}},
			Graph:       g,
		})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	if data, err := flexModel(true); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data, "", Options{MaxBytes: 1 << 20})
		if err != nil {
			return
		}
		in := make([]*Value, len(m.InputNames()))
		for i := range in {
			in[i] = &Value{Kind: KindTensor, Tensor: tensor.Tensor{DType: tensor.FP32, Shape: []int64{2}, Data: []float32{1, 2}}}
		}
		ctx := &countdownCtx{Context: context.Background(), n: 10000}
		_, _ = m.Run(ctx, in)
	})
}

// FuzzDecodeDataValue checks that the SequenceProto/OptionalProto decoder
// never panics.
func FuzzDecodeDataValue(f *testing.F) {
	tb, _ := proto.Marshal(sgFloatInit("", []int64{1}, 1))
	var seq []byte
	seq = protowire.AppendTag(seq, 3, protowire.BytesType)
	seq = protowire.AppendBytes(seq, tb)
	f.Add(seq, false)
	f.Add(protowire.AppendBytes(protowire.AppendTag(nil, 5, protowire.BytesType), seq), true)
	f.Fuzz(func(t *testing.T, data []byte, optional bool) {
		_, _ = decodeDataValue(data, optional, &tensorReader{budget: 1 << 20}, 0)
	})
}

// FuzzImageDecoder checks that ImageDecoder refuses hostile images with
// errors, never panics or huge allocations (sizes are checked against
// maxImagePixels before decoding).
func FuzzImageDecoder(f *testing.F) {
	f.Add([]byte("P6\n2 1\n255\n\xff\x00\x00\x0a\x14\x1e"))
	bmp := make([]byte, 54+4)
	copy(bmp, "BM")
	bmp[10], bmp[18], bmp[22], bmp[28] = 54, 1, 1, 24
	f.Add(bmp)
	f.Add([]byte("\x89PNG\r\n\x1a\n"))
	f.Add([]byte("\xff\xd8\xff"))
	op, _ := DefaultOps().Lookup(DomainONNX, "ImageDecoder", 20)
	k, err := op.New(&Node{OpType: "ImageDecoder", Version: 20, Attrs: NewAttrs(nil), NumInputs: 1, NumOutputs: 1})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = k(new(Scratch), []*Value{u8s(data)}, []*Value{new(Value)})
	})
}
