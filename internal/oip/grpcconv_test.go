package oip

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/shoal-ml/shoal/internal/oip/inferencepb"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// grpcCases holds one tensor per datatype, with edge values, plus empty and
// scalar shapes.
func grpcCases() []struct {
	name  string
	t     *tensor.Tensor
	field string // the typed contents field the published spec assigns
} {
	tt := func(dt tensor.DType, shape []int64, data any) *tensor.Tensor {
		return &tensor.Tensor{Name: "x", DType: dt, Shape: shape, Data: data}
	}
	return []struct {
		name  string
		t     *tensor.Tensor
		field string
	}{
		{"bool", tt(tensor.Bool, []int64{2, 2}, []bool{true, false, false, true}), "bool_contents"},
		{"int8", tt(tensor.Int8, []int64{3}, []int8{math.MinInt8, 0, math.MaxInt8}), "int_contents"},
		{"int16", tt(tensor.Int16, []int64{3}, []int16{math.MinInt16, -1, math.MaxInt16}), "int_contents"},
		{"int32", tt(tensor.Int32, []int64{3}, []int32{math.MinInt32, 7, math.MaxInt32}), "int_contents"},
		{"int64", tt(tensor.Int64, []int64{1, 3}, []int64{math.MinInt64, 7, math.MaxInt64}), "int64_contents"},
		{"uint8", tt(tensor.Uint8, []int64{3}, []uint8{0, 1, math.MaxUint8}), "uint_contents"},
		{"uint16", tt(tensor.Uint16, []int64{3}, []uint16{0, 1, math.MaxUint16}), "uint_contents"},
		{"uint32", tt(tensor.Uint32, []int64{3}, []uint32{0, 1, math.MaxUint32}), "uint_contents"},
		{"uint64", tt(tensor.Uint64, []int64{3}, []uint64{0, 1, math.MaxUint64}), "uint64_contents"},
		{"fp16", tt(tensor.FP16, []int64{3}, []uint16{0x3c00, 0x7c00, 0x7e00}), ""},
		{"fp32", tt(tensor.FP32, []int64{2, 3}, []float32{1.5, -0, float32(math.Inf(1)), float32(math.NaN()), math.MaxFloat32, math.SmallestNonzeroFloat32}), "fp32_contents"},
		{"fp64", tt(tensor.FP64, []int64{4}, []float64{1.5, math.Inf(-1), math.NaN(), math.SmallestNonzeroFloat64}), "fp64_contents"},
		{"bytes", tt(tensor.Bytes, []int64{3}, [][]byte{[]byte("hello"), {}, {0, 0xff}}), "bytes_contents"},
		{"scalar", tt(tensor.FP32, []int64{}, []float32{42}), "fp32_contents"},
		{"empty fp32", tt(tensor.FP32, []int64{2, 0}, []float32{}), ""},
		{"empty bytes", tt(tensor.Bytes, []int64{0}, [][]byte{}), ""},
		{"empty fp16", tt(tensor.FP16, []int64{0, 4}, []uint16{}), ""},
	}
}

// sameTensor reports whether a and b have the same name, type, shape and
// element bits (so NaNs compare equal).
func sameTensor(a, b *tensor.Tensor) bool {
	return a.Name == b.Name && a.DType == b.DType && slices.Equal(a.Shape, b.Shape) &&
		reflect.TypeOf(a.Data) == reflect.TypeOf(b.Data) &&
		bytes.Equal(a.AppendRaw(nil), b.AppendRaw(nil))
}

// overWire sends out through a marshalled ModelInferResponse and returns the
// ModelInferRequest input and raw entry a client echoing it would send.
func overWire(t *testing.T, out *inferencepb.ModelInferResponse_InferOutputTensor, raw []byte) (*inferencepb.ModelInferRequest_InferInputTensor, []byte, bool) {
	t.Helper()
	resp := &inferencepb.ModelInferResponse{Outputs: []*inferencepb.ModelInferResponse_InferOutputTensor{out}}
	if raw != nil {
		resp.RawOutputContents = [][]byte{raw}
	}
	b, err := proto.Marshal(resp)
	if err != nil {
		t.Fatalf("proto.Marshal: %v", err)
	}
	var got inferencepb.ModelInferResponse
	if err := proto.Unmarshal(b, &got); err != nil {
		t.Fatalf("proto.Unmarshal: %v", err)
	}
	o := got.GetOutputs()[0]
	in := &inferencepb.ModelInferRequest_InferInputTensor{
		Name: o.GetName(), Datatype: o.GetDatatype(), Shape: o.GetShape(), Contents: o.GetContents(),
	}
	if rc := got.GetRawOutputContents(); len(rc) > 0 {
		return in, rc[0], true
	}
	return in, nil, false
}

// contentsFields returns the names of the populated fields of c.
func contentsFields(c *inferencepb.InferTensorContents) []string {
	var names []string
	if c == nil {
		return nil
	}
	c.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		names = append(names, string(fd.Name()))
		return true
	})
	return names
}

func TestTensorGRPCRoundTrip(t *testing.T) {
	for _, tc := range grpcCases() {
		for _, raw := range []bool{false, true} {
			name := tc.name + "/typed"
			if raw {
				name = tc.name + "/raw"
			}
			t.Run(name, func(t *testing.T) {
				if err := tc.t.Validate(); err != nil {
					t.Fatalf("bad case: %v", err)
				}
				out, rawBytes := TensorToGRPC(tc.t, raw)
				wantRaw := raw || tc.t.DType == tensor.FP16
				if (rawBytes != nil) != wantRaw {
					t.Fatalf("TensorToGRPC(%s, %v) raw bytes = %v, want raw form %v", tc.t.DType, raw, rawBytes, wantRaw)
				}
				if out.GetName() != tc.t.Name || out.GetDatatype() != tc.t.DType.String() || !slices.Equal(out.GetShape(), tc.t.Shape) {
					t.Errorf("TensorToGRPC header = %q %q %v, want %q %q %v", out.GetName(), out.GetDatatype(), out.GetShape(), tc.t.Name, tc.t.DType, tc.t.Shape)
				}
				fields := contentsFields(out.GetContents())
				var wantFields []string
				if !wantRaw && tc.field != "" {
					wantFields = []string{tc.field}
				}
				if !slices.Equal(fields, wantFields) {
					t.Errorf("TensorToGRPC(%s, %v) contents fields = %v, want %v", tc.t.DType, raw, fields, wantFields)
				}
				if wantRaw && !bytes.Equal(rawBytes, tc.t.AppendRaw(nil)) {
					t.Errorf("TensorToGRPC(%s, true) raw = %x, want %x", tc.t.DType, rawBytes, tc.t.AppendRaw(nil))
				}

				in, rawIn, hasRaw := overWire(t, out, rawBytes)
				if hasRaw != wantRaw {
					t.Fatalf("raw entry lost on the wire: hasRaw = %v, want %v", hasRaw, wantRaw)
				}
				got, err := TensorFromGRPC(in, rawIn, hasRaw)
				if err != nil {
					t.Fatalf("TensorFromGRPC: %v", err)
				}
				if err := got.Validate(); err != nil {
					t.Fatalf("TensorFromGRPC result invalid: %v", err)
				}
				if !sameTensor(got, tc.t) {
					t.Errorf("TensorFromGRPC = %+v, want %+v", got, tc.t)
				}
			})
		}
	}
}

func TestTensorFromGRPCDoesNotAliasRaw(t *testing.T) {
	raw := []byte{1, 2, 3, 4}
	got, err := TensorFromGRPC(&inferencepb.ModelInferRequest_InferInputTensor{Name: "x", Datatype: "UINT8", Shape: []int64{4}}, raw, true)
	if err != nil {
		t.Fatalf("TensorFromGRPC: %v", err)
	}
	raw[0] = 99
	if d := got.Data.([]uint8); d[0] != 1 {
		t.Errorf("TensorFromGRPC result aliases raw: Data[0] = %d after changing raw, want 1", d[0])
	}
}

func TestTensorFromGRPCErrors(t *testing.T) {
	type in = inferencepb.ModelInferRequest_InferInputTensor
	type contents = inferencepb.InferTensorContents
	tests := []struct {
		name   string
		in     *in
		raw    []byte
		hasRaw bool
		want   error // besides ErrBadRequest
	}{
		{"nil input", nil, nil, false, nil},
		{"unknown datatype", &in{Datatype: "FP8", Shape: []int64{1}}, nil, false, tensor.ErrDType},
		{"empty datatype", &in{Shape: []int64{1}}, nil, false, tensor.ErrDType},
		{"lowercase datatype", &in{Datatype: "fp32", Shape: []int64{1}, Contents: &contents{Fp32Contents: []float32{1}}}, nil, false, tensor.ErrDType},
		{"invalid datatype", &in{Datatype: "INVALID", Shape: []int64{0}}, nil, false, tensor.ErrDType},
		{"negative dim", &in{Datatype: "FP32", Shape: []int64{2, -1}}, nil, false, tensor.ErrShape},
		{"overflowing shape", &in{Datatype: "FP32", Shape: []int64{1 << 40, 1 << 40}}, nil, false, tensor.ErrShape},
		{"max int64 dims", &in{Datatype: "INT8", Shape: []int64{math.MaxInt64, math.MaxInt64}}, nil, false, tensor.ErrShape},
		{"overflowing shape raw", &in{Datatype: "BYTES", Shape: []int64{math.MaxInt64}}, nil, true, tensor.ErrShape},
		{"too few elements", &in{Datatype: "FP32", Shape: []int64{3}, Contents: &contents{Fp32Contents: []float32{1, 2}}}, nil, false, tensor.ErrData},
		{"too many elements", &in{Datatype: "INT64", Shape: []int64{1}, Contents: &contents{Int64Contents: []int64{1, 2}}}, nil, false, tensor.ErrData},
		{"no contents", &in{Datatype: "BOOL", Shape: []int64{1}}, nil, false, tensor.ErrData},
		{"wrong field", &in{Datatype: "INT32", Shape: []int64{1}, Contents: &contents{Fp32Contents: []float32{1}}}, nil, false, tensor.ErrData},
		{"int64 in int_contents", &in{Datatype: "INT64", Shape: []int64{1}, Contents: &contents{IntContents: []int32{1}}}, nil, false, tensor.ErrData},
		{"extra field", &in{Datatype: "FP32", Shape: []int64{1}, Contents: &contents{Fp32Contents: []float32{1}, Fp64Contents: []float64{1}}}, nil, false, tensor.ErrData},
		{"int8 overflow", &in{Datatype: "INT8", Shape: []int64{2}, Contents: &contents{IntContents: []int32{1, 128}}}, nil, false, tensor.ErrData},
		{"int8 underflow", &in{Datatype: "INT8", Shape: []int64{1}, Contents: &contents{IntContents: []int32{-129}}}, nil, false, tensor.ErrData},
		{"int16 overflow", &in{Datatype: "INT16", Shape: []int64{1}, Contents: &contents{IntContents: []int32{-40000}}}, nil, false, tensor.ErrData},
		{"uint8 overflow", &in{Datatype: "UINT8", Shape: []int64{1}, Contents: &contents{UintContents: []uint32{256}}}, nil, false, tensor.ErrData},
		{"uint16 overflow", &in{Datatype: "UINT16", Shape: []int64{1}, Contents: &contents{UintContents: []uint32{65536}}}, nil, false, tensor.ErrData},
		{"fp16 typed", &in{Datatype: "FP16", Shape: []int64{2}}, nil, false, tensor.ErrData},
		{"fp16 in uint_contents", &in{Datatype: "FP16", Shape: []int64{1}, Contents: &contents{UintContents: []uint32{0x3c00}}}, nil, false, tensor.ErrData},
		{"raw too short", &in{Datatype: "FP32", Shape: []int64{2}}, make([]byte, 7), true, tensor.ErrData},
		{"raw too long", &in{Datatype: "INT16", Shape: []int64{2}}, make([]byte, 5), true, tensor.ErrData},
		{"raw missing", &in{Datatype: "FP64", Shape: []int64{1}}, nil, true, tensor.ErrData},
		{"raw and contents", &in{Datatype: "FP32", Shape: []int64{1}, Contents: &contents{Fp32Contents: []float32{1}}}, make([]byte, 4), true, tensor.ErrData},
		{"raw bytes truncated length", &in{Datatype: "BYTES", Shape: []int64{1}}, []byte{1, 0}, true, tensor.ErrData},
		{"raw bytes length past end", &in{Datatype: "BYTES", Shape: []int64{1}}, []byte{9, 0, 0, 0, 'a'}, true, tensor.ErrData},
		{"raw bytes trailing data", &in{Datatype: "BYTES", Shape: []int64{1}}, []byte{1, 0, 0, 0, 'a', 'b'}, true, tensor.ErrData},
		{"raw bytes huge length", &in{Datatype: "BYTES", Shape: []int64{1}}, []byte{0xff, 0xff, 0xff, 0xff}, true, tensor.ErrData},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := TensorFromGRPC(tc.in, tc.raw, tc.hasRaw)
			if err == nil {
				t.Fatalf("TensorFromGRPC(%v) = %+v, want error", tc.in, got)
			}
			if !errors.Is(err, ErrBadRequest) {
				t.Errorf("TensorFromGRPC(%v) error %q does not wrap ErrBadRequest", tc.in, err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("TensorFromGRPC(%v) error %q does not wrap %q", tc.in, err, tc.want)
			}
		})
	}
}

func TestTensorToGRPCInvalidDoesNotPanic(t *testing.T) {
	for _, tc := range []*tensor.Tensor{
		{Name: "nil data", DType: tensor.FP32, Shape: []int64{2}},
		{Name: "wrong type", DType: tensor.Int64, Shape: []int64{1}, Data: []float32{1}},
		{Name: "short", DType: tensor.Bytes, Shape: []int64{3}, Data: [][]byte{nil}},
		{Name: "invalid dtype", DType: tensor.Invalid, Data: []int8{1}},
		{Name: "fp16 wrong type", DType: tensor.FP16, Shape: []int64{1}, Data: []int16{1}},
	} {
		for _, raw := range []bool{false, true} {
			out, _ := TensorToGRPC(tc, raw)
			if out.GetName() != tc.Name {
				t.Errorf("TensorToGRPC(%q, %v) name = %q", tc.Name, raw, out.GetName())
			}
		}
	}
}

func TestParamsGRPC(t *testing.T) {
	pb := func(v any) *inferencepb.InferParameter {
		p := &inferencepb.InferParameter{}
		switch v := v.(type) {
		case bool:
			p.ParameterChoice = &inferencepb.InferParameter_BoolParam{BoolParam: v}
		case int64:
			p.ParameterChoice = &inferencepb.InferParameter_Int64Param{Int64Param: v}
		case string:
			p.ParameterChoice = &inferencepb.InferParameter_StringParam{StringParam: v}
		case float64:
			p.ParameterChoice = &inferencepb.InferParameter_DoubleParam{DoubleParam: v}
		case uint64:
			p.ParameterChoice = &inferencepb.InferParameter_Uint64Param{Uint64Param: v}
		}
		return p
	}
	tests := []struct {
		name   string
		in     map[string]any
		wantPB map[string]*inferencepb.InferParameter
		back   map[string]any // ParamsFromGRPC(ParamsToGRPC(in))
	}{
		{"nil", nil, nil, nil},
		{"empty", map[string]any{}, nil, nil},
		{
			"native types",
			map[string]any{"b": true, "i": int64(-3), "s": "x", "f": 0.5, "u": uint64(math.MaxUint64)},
			map[string]*inferencepb.InferParameter{"b": pb(true), "i": pb(int64(-3)), "s": pb("x"), "f": pb(0.5), "u": pb(uint64(math.MaxUint64))},
			map[string]any{"b": true, "i": int64(-3), "s": "x", "f": 0.5, "u": uint64(math.MaxUint64)},
		},
		{
			"other ints",
			map[string]any{"int": 7, "i8": int8(-8), "i16": int16(16), "i32": int32(-32), "u8": uint8(8), "u16": uint16(16), "u32": uint32(math.MaxUint32), "u": uint(5), "big u": uint(math.MaxUint64)},
			map[string]*inferencepb.InferParameter{"int": pb(int64(7)), "i8": pb(int64(-8)), "i16": pb(int64(16)), "i32": pb(int64(-32)), "u8": pb(int64(8)), "u16": pb(int64(16)), "u32": pb(int64(math.MaxUint32)), "u": pb(int64(5)), "big u": pb(uint64(math.MaxUint64))},
			map[string]any{"int": int64(7), "i8": int64(-8), "i16": int64(16), "i32": int64(-32), "u8": int64(8), "u16": int64(16), "u32": int64(math.MaxUint32), "u": int64(5), "big u": uint64(math.MaxUint64)},
		},
		{
			"float32 and unsupported",
			map[string]any{"f32": float32(0.25), "nil": nil, "slice": []string{"a"}, "map": map[string]any{}},
			map[string]*inferencepb.InferParameter{"f32": pb(0.25)},
			map[string]any{"f32": 0.25},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ParamsToGRPC(tc.in)
			if len(got) != len(tc.wantPB) || (got == nil) != (tc.wantPB == nil) {
				t.Fatalf("ParamsToGRPC(%v) = %v, want %v", tc.in, got, tc.wantPB)
			}
			for k, want := range tc.wantPB {
				if !proto.Equal(got[k], want) {
					t.Errorf("ParamsToGRPC(%v)[%q] = %v, want %v", tc.in, k, got[k], want)
				}
			}
			// Through the wire, as request parameters.
			b, err := proto.Marshal(&inferencepb.ModelInferRequest{Parameters: got})
			if err != nil {
				t.Fatalf("proto.Marshal: %v", err)
			}
			var req inferencepb.ModelInferRequest
			if err := proto.Unmarshal(b, &req); err != nil {
				t.Fatalf("proto.Unmarshal: %v", err)
			}
			if back := ParamsFromGRPC(req.GetParameters()); !reflect.DeepEqual(back, tc.back) {
				t.Errorf("ParamsFromGRPC(ParamsToGRPC(%v)) = %#v, want %#v", tc.in, back, tc.back)
			}
		})
	}
}

func TestParamsFromGRPCSkipsEmpty(t *testing.T) {
	in := map[string]*inferencepb.InferParameter{
		"nil":   nil,
		"unset": {},
		"ok":    {ParameterChoice: &inferencepb.InferParameter_StringParam{StringParam: "v"}},
	}
	want := map[string]any{"ok": "v"}
	if got := ParamsFromGRPC(in); !reflect.DeepEqual(got, want) {
		t.Errorf("ParamsFromGRPC(%v) = %v, want %v", in, got, want)
	}
}

// FuzzTensorFromGRPC decodes arbitrary input tensor messages and raw entries.
// It checks that decoding never panics, that every error wraps ErrBadRequest,
// and that a decoded tensor is valid and survives a round trip through both
// output forms unchanged.
func FuzzTensorFromGRPC(f *testing.F) {
	for _, tc := range grpcCases() {
		for _, raw := range []bool{false, true} {
			out, rawBytes := TensorToGRPC(tc.t, raw)
			b, err := proto.Marshal(&inferencepb.ModelInferRequest_InferInputTensor{
				Name: out.Name, Datatype: out.Datatype, Shape: out.Shape, Contents: out.Contents,
			})
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b, rawBytes, rawBytes != nil)
		}
	}
	for _, in := range []*inferencepb.ModelInferRequest_InferInputTensor{
		{Datatype: "INT8", Shape: []int64{1}, Contents: &inferencepb.InferTensorContents{IntContents: []int32{300}}},
		{Datatype: "BYTES", Shape: []int64{1 << 40, 1 << 40}},
		{Datatype: "FP16", Shape: []int64{-1}},
	} {
		b, err := proto.Marshal(in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, []byte{0xff, 0xff, 0xff, 0x7f}, true)
	}
	f.Fuzz(func(t *testing.T, msg, raw []byte, hasRaw bool) {
		var in inferencepb.ModelInferRequest_InferInputTensor
		if err := proto.Unmarshal(msg, &in); err != nil {
			return
		}
		got, err := TensorFromGRPC(&in, raw, hasRaw)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %q does not wrap ErrBadRequest", err)
			}
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("TensorFromGRPC returned an invalid tensor: %v", err)
		}
		for _, asRaw := range []bool{false, true} {
			out, rawBytes := TensorToGRPC(got, asRaw)
			in2 := &inferencepb.ModelInferRequest_InferInputTensor{
				Name: out.Name, Datatype: out.Datatype, Shape: out.Shape, Contents: out.Contents,
			}
			again, err := TensorFromGRPC(in2, rawBytes, rawBytes != nil)
			if err != nil {
				t.Fatalf("round trip (raw %v): %v", asRaw, err)
			}
			if !sameTensor(again, got) {
				t.Fatalf("round trip (raw %v) = %+v, want %+v", asRaw, again, got)
			}
		}
	})
}
