package oip

import (
	"fmt"
	"math"
	"slices"

	"github.com/shoal-ml/shoal/internal/oip/inferencepb"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// TensorFromGRPC decodes one input tensor of a gRPC ModelInferRequest.
//
// When hasRaw is true (the request carries raw_input_contents) the elements
// come from raw, the input's entry of raw_input_contents (entries follow the
// order of inputs), in the layout of tensor.FromRaw, and in.Contents must
// hold no elements. Otherwise they come from in.Contents, from the field the
// datatype selects: bool_contents for BOOL, int_contents for INT8, INT16 and
// INT32, int64_contents for INT64, uint_contents for UINT8, UINT16 and
// UINT32, uint64_contents for UINT64, fp32_contents, fp64_contents and
// bytes_contents; every other field must be empty. FP16 has no typed field
// and must come raw.
//
// Every error wraps ErrBadRequest, and also tensor.ErrDType for an unknown
// datatype, tensor.ErrShape for a negative or too large shape, and
// tensor.ErrData for an element count or raw size that does not match the
// shape, a value out of range for a narrow integer type, or contents in the
// wrong field.
//
// The result does not alias raw, but may share memory with in.Contents where
// the element types agree (the typed fields of FP32, FP64, INT64, UINT64,
// BOOL and BYTES); in must not be modified while the tensor is in use.
func TensorFromGRPC(in *inferencepb.ModelInferRequest_InferInputTensor, raw []byte, hasRaw bool) (*tensor.Tensor, error) {
	if in == nil {
		return nil, fmt.Errorf("%w: missing input tensor", ErrBadRequest)
	}
	t, err := tensorFromGRPC(in, raw, hasRaw)
	if err != nil {
		return nil, fmt.Errorf("%w: input %q: %w", ErrBadRequest, in.GetName(), err)
	}
	return t, nil
}

func tensorFromGRPC(in *inferencepb.ModelInferRequest_InferInputTensor, raw []byte, hasRaw bool) (*tensor.Tensor, error) {
	dt, err := tensor.ParseDType(in.GetDatatype())
	if err != nil {
		return nil, err
	}
	shape := in.GetShape()
	n, err := tensor.NumElements(shape)
	if err != nil {
		return nil, err
	}
	c := in.GetContents()
	if hasRaw {
		if f := pbFirstContents(c, -1); f >= 0 {
			return nil, fmt.Errorf("%w: %s set together with raw_input_contents", tensor.ErrData, pbContentsFields[f].name)
		}
		return tensor.FromRaw(in.GetName(), dt, shape, raw)
	}
	field := pbContentsField(dt)
	if f := pbFirstContents(c, field); f >= 0 {
		return nil, fmt.Errorf("%w: %s input holds %s", tensor.ErrData, dt, pbContentsFields[f].name)
	}
	if field < 0 {
		// FP16: nothing to read, which is right only for zero elements.
		if n != 0 {
			return nil, fmt.Errorf("%w: %s has no typed contents; send it in raw_input_contents", tensor.ErrData, dt)
		}
		return tensor.New(in.GetName(), dt, shape)
	}
	if got := pbContentsFields[field].len(c); got != n {
		return nil, fmt.Errorf("%w: shape %v needs %d elements, %s holds %d", tensor.ErrData, shape, n, pbContentsFields[field].name, got)
	}
	data, err := pbDataFromContents(dt, c)
	if err != nil {
		return nil, err
	}
	t := &tensor.Tensor{Name: in.GetName(), DType: dt, Shape: slices.Clone(shape), Data: data}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return t, nil
}

// pbContentsFields lists the fields of InferTensorContents, by field number
// minus one.
var pbContentsFields = [...]struct {
	name string
	len  func(*inferencepb.InferTensorContents) int
}{
	{"bool_contents", func(c *inferencepb.InferTensorContents) int { return len(c.GetBoolContents()) }},
	{"int_contents", func(c *inferencepb.InferTensorContents) int { return len(c.GetIntContents()) }},
	{"int64_contents", func(c *inferencepb.InferTensorContents) int { return len(c.GetInt64Contents()) }},
	{"uint_contents", func(c *inferencepb.InferTensorContents) int { return len(c.GetUintContents()) }},
	{"uint64_contents", func(c *inferencepb.InferTensorContents) int { return len(c.GetUint64Contents()) }},
	{"fp32_contents", func(c *inferencepb.InferTensorContents) int { return len(c.GetFp32Contents()) }},
	{"fp64_contents", func(c *inferencepb.InferTensorContents) int { return len(c.GetFp64Contents()) }},
	{"bytes_contents", func(c *inferencepb.InferTensorContents) int { return len(c.GetBytesContents()) }},
}

// pbContentsField returns the index in pbContentsFields of the field that
// holds dt, or -1 for FP16, which has none.
func pbContentsField(dt tensor.DType) int {
	switch dt {
	case tensor.Bool:
		return 0
	case tensor.Int8, tensor.Int16, tensor.Int32:
		return 1
	case tensor.Int64:
		return 2
	case tensor.Uint8, tensor.Uint16, tensor.Uint32:
		return 3
	case tensor.Uint64:
		return 4
	case tensor.FP32:
		return 5
	case tensor.FP64:
		return 6
	case tensor.Bytes:
		return 7
	}
	return -1
}

// pbFirstContents returns the index of the first non-empty field of c other
// than except, or -1 if there is none.
func pbFirstContents(c *inferencepb.InferTensorContents, except int) int {
	for i, f := range pbContentsFields {
		if i != except && f.len(c) != 0 {
			return i
		}
	}
	return -1
}

// pbDataFromContents returns the typed slice for dt from its field of c,
// whose length the caller has checked.
func pbDataFromContents(dt tensor.DType, c *inferencepb.InferTensorContents) (any, error) {
	switch dt {
	case tensor.Bool:
		return pbNonNil(c.GetBoolContents()), nil
	case tensor.Int8:
		return pbNarrow[int8](c.GetIntContents(), dt)
	case tensor.Int16:
		return pbNarrow[int16](c.GetIntContents(), dt)
	case tensor.Int32:
		return pbNonNil(c.GetIntContents()), nil
	case tensor.Int64:
		return pbNonNil(c.GetInt64Contents()), nil
	case tensor.Uint8:
		return pbNarrow[uint8](c.GetUintContents(), dt)
	case tensor.Uint16:
		return pbNarrow[uint16](c.GetUintContents(), dt)
	case tensor.Uint32:
		return pbNonNil(c.GetUintContents()), nil
	case tensor.Uint64:
		return pbNonNil(c.GetUint64Contents()), nil
	case tensor.FP32:
		return pbNonNil(c.GetFp32Contents()), nil
	case tensor.FP64:
		return pbNonNil(c.GetFp64Contents()), nil
	case tensor.Bytes:
		return pbNonNil(c.GetBytesContents()), nil
	}
	return nil, fmt.Errorf("%w %v", tensor.ErrDType, dt)
}

// pbNarrow converts 32-bit protobuf integers to a narrower element type,
// rejecting values that do not fit.
func pbNarrow[T int8 | int16 | uint8 | uint16, S int32 | uint32](src []S, dt tensor.DType) ([]T, error) {
	out := make([]T, len(src))
	for i, v := range src {
		if S(T(v)) != v {
			return nil, fmt.Errorf("%w: element %d: %d out of range for %s", tensor.ErrData, i, v, dt)
		}
		out[i] = T(v)
	}
	return out, nil
}

// pbNonNil returns s, or an empty non-nil slice for nil, so that a
// zero-element tensor still holds the Go type its DType requires.
func pbNonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// TensorToGRPC encodes t as one output tensor of a gRPC ModelInferResponse.
//
// With raw true it returns the output with no contents and the tensor's raw
// layout (see tensor.Tensor.AppendRaw) for the response's
// raw_output_contents, in the order of outputs. With raw false it fills the
// typed contents field the datatype selects (see TensorFromGRPC) and returns
// nil bytes, except for FP16, which has no typed field: an FP16 tensor always
// comes back raw. The returned bytes are non-nil exactly when the output is
// in raw form, and the protocol forbids mixing the forms in one response, so
// a caller that gets bytes back for one output must send every output raw.
//
// t should be valid (see tensor.Tensor.Validate); for an invalid t the
// contents are undefined but TensorToGRPC does not panic. Typed contents may
// share memory with t.Data where the element types agree; t must not be
// modified until the message has been sent. The raw bytes never alias t.
func TensorToGRPC(t *tensor.Tensor, raw bool) (*inferencepb.ModelInferResponse_InferOutputTensor, []byte) {
	out := &inferencepb.ModelInferResponse_InferOutputTensor{
		Name:     t.Name,
		Datatype: t.DType.String(),
		Shape:    slices.Clone(t.Shape),
	}
	if raw || t.DType == tensor.FP16 {
		return out, t.AppendRaw(make([]byte, 0, t.RawSize()))
	}
	out.Contents = pbContents(t)
	return out, nil
}

// pbContents returns the typed contents of t, or empty contents when Data
// does not have the Go type DType requires.
func pbContents(t *tensor.Tensor) *inferencepb.InferTensorContents {
	c := &inferencepb.InferTensorContents{}
	if t.Len() < 0 {
		return c
	}
	switch d := t.Data.(type) {
	case []bool:
		c.BoolContents = d
	case []int8:
		c.IntContents = pbWiden[int32](d)
	case []int16:
		c.IntContents = pbWiden[int32](d)
	case []int32:
		c.IntContents = d
	case []int64:
		c.Int64Contents = d
	case []uint8:
		c.UintContents = pbWiden[uint32](d)
	case []uint16:
		c.UintContents = pbWiden[uint32](d)
	case []uint32:
		c.UintContents = d
	case []uint64:
		c.Uint64Contents = d
	case []float32:
		c.Fp32Contents = d
	case []float64:
		c.Fp64Contents = d
	case [][]byte:
		c.BytesContents = d
	}
	return c
}

// pbWiden converts narrow integers to the 32-bit protobuf element type.
func pbWiden[T int32 | uint32, S int8 | int16 | uint8 | uint16](src []S) []T {
	out := make([]T, len(src))
	for i, v := range src {
		out[i] = T(v)
	}
	return out
}

// ParamsFromGRPC converts gRPC parameters to the values InferRequest and
// InferResponse hold: bool, int64, string, float64 or uint64. Entries that
// are nil or hold no value are left out. It returns nil for an empty map.
func ParamsFromGRPC(params map[string]*inferencepb.InferParameter) map[string]any {
	if len(params) == 0 {
		return nil
	}
	out := make(map[string]any, len(params))
	for k, p := range params {
		switch v := p.GetParameterChoice().(type) {
		case *inferencepb.InferParameter_BoolParam:
			out[k] = v.BoolParam
		case *inferencepb.InferParameter_Int64Param:
			out[k] = v.Int64Param
		case *inferencepb.InferParameter_StringParam:
			out[k] = v.StringParam
		case *inferencepb.InferParameter_DoubleParam:
			out[k] = v.DoubleParam
		case *inferencepb.InferParameter_Uint64Param:
			out[k] = v.Uint64Param
		}
	}
	return out
}

// ParamsToGRPC converts parameter values to gRPC parameters: bool, string,
// int64, uint64 and float64 map to the matching field; int, int8, int16,
// int32, uint8, uint16 and uint32 to int64; uint to int64, or to uint64 when
// above math.MaxInt64; float32 to double. Values of other types are left
// out. It returns nil for an empty map.
func ParamsToGRPC(params map[string]any) map[string]*inferencepb.InferParameter {
	if len(params) == 0 {
		return nil
	}
	out := make(map[string]*inferencepb.InferParameter, len(params))
	for k, v := range params {
		if p := pbParam(v); p != nil {
			out[k] = p
		}
	}
	return out
}

func pbParam(v any) *inferencepb.InferParameter {
	p := &inferencepb.InferParameter{}
	switch v := v.(type) {
	case bool:
		p.ParameterChoice = &inferencepb.InferParameter_BoolParam{BoolParam: v}
	case string:
		p.ParameterChoice = &inferencepb.InferParameter_StringParam{StringParam: v}
	case int64:
		p.ParameterChoice = &inferencepb.InferParameter_Int64Param{Int64Param: v}
	case int:
		p.ParameterChoice = &inferencepb.InferParameter_Int64Param{Int64Param: int64(v)}
	case int8:
		p.ParameterChoice = &inferencepb.InferParameter_Int64Param{Int64Param: int64(v)}
	case int16:
		p.ParameterChoice = &inferencepb.InferParameter_Int64Param{Int64Param: int64(v)}
	case int32:
		p.ParameterChoice = &inferencepb.InferParameter_Int64Param{Int64Param: int64(v)}
	case uint8:
		p.ParameterChoice = &inferencepb.InferParameter_Int64Param{Int64Param: int64(v)}
	case uint16:
		p.ParameterChoice = &inferencepb.InferParameter_Int64Param{Int64Param: int64(v)}
	case uint32:
		p.ParameterChoice = &inferencepb.InferParameter_Int64Param{Int64Param: int64(v)}
	case uint:
		if uint64(v) > math.MaxInt64 {
			p.ParameterChoice = &inferencepb.InferParameter_Uint64Param{Uint64Param: uint64(v)}
		} else {
			p.ParameterChoice = &inferencepb.InferParameter_Int64Param{Int64Param: int64(v)}
		}
	case uint64:
		p.ParameterChoice = &inferencepb.InferParameter_Uint64Param{Uint64Param: v}
	case float64:
		p.ParameterChoice = &inferencepb.InferParameter_DoubleParam{DoubleParam: v}
	case float32:
		p.ParameterChoice = &inferencepb.InferParameter_DoubleParam{DoubleParam: float64(v)}
	default:
		return nil
	}
	return p
}
