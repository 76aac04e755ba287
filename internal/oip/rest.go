package oip

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/shoal-ml/shoal/internal/tensor"
)

type wireRequest struct {
	ID         string         `json:"id"`
	Parameters map[string]any `json:"parameters"`
	Inputs     []wireInput    `json:"inputs"`
	Outputs    []wireOutput   `json:"outputs"`
}

type wireInput struct {
	Name       string          `json:"name"`
	Shape      []int64         `json:"shape"`
	Datatype   string          `json:"datatype"`
	Parameters map[string]any  `json:"parameters"`
	Data       json.RawMessage `json:"data"`
}

type wireOutput struct {
	Name       string         `json:"name"`
	Parameters map[string]any `json:"parameters"`
}

// DecodeRequest decodes a REST inference request body. headerLen is the
// value of the Inference-Header-Content-Length header, or -1 when absent (the
// whole body is JSON). Inputs with a binary_data_size parameter take their
// data, in order, from the bytes after the JSON header. Every error wraps
// ErrBadRequest.
func DecodeRequest(body []byte, headerLen int) (*InferRequest, error) {
	js, bin := body, []byte(nil)
	if headerLen >= 0 {
		if headerLen > len(body) {
			return nil, fmt.Errorf("%w: %s is %d but the body has %d bytes", ErrBadRequest, HeaderContentLength, headerLen, len(body))
		}
		js, bin = body[:headerLen], body[headerLen:]
	}
	var w wireRequest
	if err := json.Unmarshal(js, &w); err != nil {
		return nil, fmt.Errorf("%w: invalid JSON: %w", ErrBadRequest, err)
	}
	req := &InferRequest{ID: w.ID, Parameters: w.Parameters}
	if b, ok := w.Parameters["binary_data_output"].(bool); ok {
		req.BinaryOutput = b
	}
	if len(w.Inputs) == 0 {
		return nil, fmt.Errorf("%w: no inputs", ErrBadRequest)
	}
	seen := make(map[string]bool, len(w.Inputs))
	for i := range w.Inputs {
		in := &w.Inputs[i]
		if in.Name == "" {
			return nil, fmt.Errorf("%w: input %d has no name", ErrBadRequest, i)
		}
		if seen[in.Name] {
			return nil, fmt.Errorf("%w: input %q given twice", ErrBadRequest, in.Name)
		}
		seen[in.Name] = true
		t, rest, err := decodeInput(in, bin)
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", in.Name, err)
		}
		bin = rest
		req.Inputs = append(req.Inputs, t)
	}
	if len(bin) != 0 {
		return nil, fmt.Errorf("%w: %d bytes of binary data not claimed by any input", ErrBadRequest, len(bin))
	}
	for _, o := range w.Outputs {
		if o.Name == "" {
			return nil, fmt.Errorf("%w: requested output has no name", ErrBadRequest)
		}
		b, _ := o.Parameters["binary_data"].(bool)
		req.Outputs = append(req.Outputs, RequestedOutput{Name: o.Name, Binary: b, Parameters: o.Parameters})
	}
	return req, nil
}

func decodeInput(in *wireInput, bin []byte) (*tensor.Tensor, []byte, error) {
	dt, err := tensor.ParseDType(in.Datatype)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if in.Shape == nil {
		return nil, nil, fmt.Errorf("%w: no shape", ErrBadRequest)
	}
	n, err := tensor.NumElements(in.Shape)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if size, ok := in.Parameters["binary_data_size"]; ok {
		f, ok := size.(float64)
		if !ok || f < 0 || f != math.Trunc(f) || f > float64(len(bin)) {
			return nil, nil, fmt.Errorf("%w: binary_data_size %v exceeds the %d binary bytes left", ErrBadRequest, size, len(bin))
		}
		if len(in.Data) != 0 {
			return nil, nil, fmt.Errorf("%w: both data and binary_data_size given", ErrBadRequest)
		}
		k := int(f)
		t, err := tensor.FromRaw(in.Name, dt, in.Shape, bin[:k])
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
		}
		return t, bin[k:], nil
	}
	if len(in.Data) == 0 {
		return nil, nil, fmt.Errorf("%w: no data", ErrBadRequest)
	}
	data, _, err := ParseData(in.Data, dt)
	if err != nil {
		return nil, nil, err
	}
	t := &tensor.Tensor{Name: in.Name, DType: dt, Shape: in.Shape, Data: data}
	if got := t.Len(); got != n {
		return nil, nil, fmt.Errorf("%w: shape %v needs %d elements, data has %d", ErrBadRequest, in.Shape, n, got)
	}
	return t, bin, nil
}

// EncodeResponse encodes a REST inference response. When any output is
// binary it returns the JSON header length to send as
// Inference-Header-Content-Length; otherwise headerLen is -1 and the body is
// plain JSON.
func EncodeResponse(dst []byte, r *InferResponse) (body []byte, headerLen int, err error) {
	b := append(dst, `{"model_name":`...)
	b = appendString(b, r.ModelName)
	if r.ModelVersion != "" {
		b = append(b, `,"model_version":`...)
		b = appendString(b, r.ModelVersion)
	}
	if r.ID != "" {
		b = append(b, `,"id":`...)
		b = appendString(b, r.ID)
	}
	if len(r.Parameters) > 0 {
		p, err := json.Marshal(r.Parameters)
		if err != nil {
			return nil, 0, fmt.Errorf("encode parameters: %w", err)
		}
		b = append(b, `,"parameters":`...)
		b = append(b, p...)
	}
	b = append(b, `,"outputs":[`...)
	anyBinary := false
	for i, t := range r.Outputs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendString(b, t.Name)
		b = append(b, `,"datatype":"`...)
		b = append(b, t.DType.String()...)
		b = append(b, `","shape":`...)
		b = appendShape(b, t.Shape)
		if i < len(r.Binary) && r.Binary[i] {
			anyBinary = true
			b = append(b, `,"parameters":{"binary_data_size":`...)
			b = strconv.AppendInt(b, int64(t.RawSize()), 10)
			b = append(b, "}}"...)
			continue
		}
		b = append(b, `,"data":`...)
		if b, err = AppendData(b, t); err != nil {
			return nil, 0, fmt.Errorf("output %q: %w", t.Name, err)
		}
		b = append(b, '}')
	}
	b = append(b, "]}"...)
	if !anyBinary {
		return b, -1, nil
	}
	headerLen = len(b) - len(dst)
	for i, t := range r.Outputs {
		if i < len(r.Binary) && r.Binary[i] {
			b = t.AppendRaw(b)
		}
	}
	return b, headerLen, nil
}

func appendShape(b []byte, shape []int64) []byte {
	b = append(b, '[')
	for i, d := range shape {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, d, 10)
	}
	return append(b, ']')
}

// AppendData appends the elements of t to b as a flat JSON array. Float NaN
// and infinities are written as the strings "NaN", "Inf" and "-Inf", which
// ParseData reads back.
func AppendData(b []byte, t *tensor.Tensor) ([]byte, error) {
	return appendNested(b, t, nil)
}

// AppendNested appends the elements of t to b as JSON arrays nested by t's
// shape (a rank-0 tensor is a bare scalar), as KServe V1 responses use.
func AppendNested(b []byte, t *tensor.Tensor) ([]byte, error) {
	return appendNested(b, t, t.Shape)
}

func appendNested(b []byte, t *tensor.Tensor, shape []int64) ([]byte, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	el, err := elementWriter(t)
	if err != nil {
		return nil, err
	}
	if shape == nil {
		shape = []int64{int64(t.Len())}
	}
	i := 0
	var rec func(d int)
	rec = func(d int) {
		if d == len(shape) {
			b = el(b, i)
			i++
			return
		}
		b = append(b, '[')
		for k := int64(0); k < shape[d]; k++ {
			if k > 0 {
				b = append(b, ',')
			}
			rec(d + 1)
		}
		b = append(b, ']')
	}
	rec(0)
	return b, nil
}

func elementWriter(t *tensor.Tensor) (func(b []byte, i int) []byte, error) {
	switch d := t.Data.(type) {
	case []bool:
		return func(b []byte, i int) []byte { return strconv.AppendBool(b, d[i]) }, nil
	case []uint8:
		return uintWriter(d), nil
	case []uint16:
		if t.DType == tensor.FP16 {
			return func(b []byte, i int) []byte {
				return appendFloat(b, float64(tensor.Float16ToFloat32(d[i])), 32)
			}, nil
		}
		return uintWriter(d), nil
	case []uint32:
		return uintWriter(d), nil
	case []uint64:
		return uintWriter(d), nil
	case []int8:
		return intWriter(d), nil
	case []int16:
		return intWriter(d), nil
	case []int32:
		return intWriter(d), nil
	case []int64:
		return intWriter(d), nil
	case []float32:
		return func(b []byte, i int) []byte { return appendFloat(b, float64(d[i]), 32) }, nil
	case []float64:
		return func(b []byte, i int) []byte { return appendFloat(b, d[i], 64) }, nil
	case [][]byte:
		return func(b []byte, i int) []byte { return appendString(b, string(d[i])) }, nil
	}
	return nil, fmt.Errorf("%w %v", tensor.ErrDType, t.DType)
}

func uintWriter[T uint8 | uint16 | uint32 | uint64](d []T) func([]byte, int) []byte {
	return func(b []byte, i int) []byte { return strconv.AppendUint(b, uint64(d[i]), 10) }
}

func intWriter[T int8 | int16 | int32 | int64](d []T) func([]byte, int) []byte {
	return func(b []byte, i int) []byte { return strconv.AppendInt(b, int64(d[i]), 10) }
}

func appendFloat(b []byte, v float64, bits int) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, `"NaN"`...)
	case math.IsInf(v, 1):
		return append(b, `"Inf"`...)
	case math.IsInf(v, -1):
		return append(b, `"-Inf"`...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, bits)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// V1Request is a decoded KServe V1 request body: {"instances": [...]} or
// {"inputs": [...]} (the same list under another name).
type V1Request struct {
	// Instances is the raw JSON list of instances.
	Instances json.RawMessage
}

// DecodeV1 decodes a KServe V1 predict body. Every error wraps ErrBadRequest.
func DecodeV1(body []byte) (*V1Request, error) {
	var w struct {
		Instances json.RawMessage `json:"instances"`
		Inputs    json.RawMessage `json:"inputs"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("%w: invalid JSON: %w", ErrBadRequest, err)
	}
	inst := w.Instances
	if len(inst) == 0 || bytes.Equal(inst, []byte("null")) {
		inst = w.Inputs
	}
	if len(inst) == 0 || bytes.Equal(inst, []byte("null")) {
		return nil, fmt.Errorf("%w: expected JSON body with 'instances'", ErrBadRequest)
	}
	if inst[0] != '[' {
		return nil, fmt.Errorf("%w: 'instances' must be a list", ErrBadRequest)
	}
	return &V1Request{Instances: inst}, nil
}

// Tensor converts the instances to a tensor named name of type dt; its shape
// is the nesting of the list (rows first).
func (r *V1Request) Tensor(name string, dt tensor.DType) (*tensor.Tensor, error) {
	data, shape, err := ParseData(r.Instances, dt)
	if err != nil {
		return nil, fmt.Errorf("instances: %w", err)
	}
	return &tensor.Tensor{Name: name, DType: dt, Shape: shape, Data: data}, nil
}

// EncodeV1 encodes {"predictions": ...} with t nested by its shape.
func EncodeV1(dst []byte, t *tensor.Tensor) ([]byte, error) {
	b := append(dst, `{"predictions":`...)
	b, err := AppendNested(b, t)
	if err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}
