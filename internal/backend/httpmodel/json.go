package httpmodel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// AppendInstances appends {"FIELD": ROWS} to dst, where ROWS is t as
// nested JSON arrays, one element per entry of its first dimension. Bytes
// elements become JSON strings (they must be UTF-8); FP16 becomes numbers.
// It returns an error for a scalar, a non-finite number or invalid UTF-8.
func AppendInstances(dst []byte, field string, t *tensor.Tensor) ([]byte, error) {
	if len(t.Shape) == 0 {
		return dst, errors.New("instances need a first dimension; got a scalar")
	}
	if err := t.Validate(); err != nil {
		return dst, err
	}
	dst = append(dst, '{')
	dst = strconv.AppendQuote(dst, field)
	dst = append(dst, ':')
	var err error
	i := 0
	var rec func(dims []int64) // appends the next prod(dims) elements
	rec = func(dims []int64) {
		if len(dims) == 0 {
			if err == nil {
				dst, err = appendElem(dst, t, i)
			}
			i++
			return
		}
		dst = append(dst, '[')
		for j := int64(0); j < dims[0]; j++ {
			if j > 0 {
				dst = append(dst, ',')
			}
			rec(dims[1:])
		}
		dst = append(dst, ']')
	}
	rec(t.Shape)
	if err != nil {
		return dst, err
	}
	return append(dst, '}'), nil
}

func appendElem(dst []byte, t *tensor.Tensor, i int) ([]byte, error) {
	num := func(f float64, bits int) ([]byte, error) {
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return dst, fmt.Errorf("%s element %d is %v, which JSON cannot carry", t.Name, i, f)
		}
		return strconv.AppendFloat(dst, f, 'g', -1, bits), nil
	}
	switch d := t.Data.(type) {
	case []float32:
		return num(float64(d[i]), 32)
	case []float64:
		return num(d[i], 64)
	case []bool:
		return strconv.AppendBool(dst, d[i]), nil
	case []int8:
		return strconv.AppendInt(dst, int64(d[i]), 10), nil
	case []int16:
		return strconv.AppendInt(dst, int64(d[i]), 10), nil
	case []int32:
		return strconv.AppendInt(dst, int64(d[i]), 10), nil
	case []int64:
		return strconv.AppendInt(dst, d[i], 10), nil
	case []uint8:
		return strconv.AppendUint(dst, uint64(d[i]), 10), nil
	case []uint32:
		return strconv.AppendUint(dst, uint64(d[i]), 10), nil
	case []uint64:
		return strconv.AppendUint(dst, d[i], 10), nil
	case []uint16:
		if t.DType == tensor.FP16 {
			return num(float64(tensor.Float16ToFloat32(d[i])), 32)
		}
		return strconv.AppendUint(dst, uint64(d[i]), 10), nil
	case [][]byte:
		if !utf8.Valid(d[i]) {
			return dst, fmt.Errorf("%s element %d is not UTF-8, which JSON strings need", t.Name, i)
		}
		b, _ := json.Marshal(string(d[i]))
		return append(dst, b...), nil
	}
	return dst, fmt.Errorf("%s: unsupported data %T", t.Name, t.Data)
}

// DecodePredictions decodes the array in field of a JSON object answer into
// a tensor named name of type dt. The array may nest to any depth but must
// be rectangular; its leaves must be numbers (or booleans) for a numeric dt
// and strings for Bytes. A bare top-level array is accepted too.
func DecodePredictions(data []byte, field, name string, dt tensor.DType) (*tensor.Tensor, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var top any
	if err := d.Decode(&top); err != nil {
		return nil, fmt.Errorf("answer is not JSON: %w", err)
	}
	if d.More() {
		return nil, errors.New("answer has data after its JSON value")
	}
	arr := top
	if obj, ok := top.(map[string]any); ok {
		if arr, ok = obj[field]; !ok {
			return nil, fmt.Errorf("answer has no %q field", field)
		}
	}
	if _, ok := arr.([]any); !ok {
		return nil, fmt.Errorf("%q is not an array", field)
	}
	var shape []int64
	for v := arr; ; {
		a, ok := v.([]any)
		if !ok {
			break
		}
		shape = append(shape, int64(len(a)))
		if len(a) == 0 {
			break
		}
		v = a[0]
	}
	n, err := tensor.NumElements(shape)
	if err != nil {
		return nil, err
	}
	leaves := make([]any, 0, n)
	var walk func(v any, depth int) error
	walk = func(v any, depth int) error {
		if depth == len(shape) {
			if _, ok := v.([]any); ok {
				return fmt.Errorf("%q is not rectangular", field)
			}
			leaves = append(leaves, v)
			return nil
		}
		a, ok := v.([]any)
		if !ok || int64(len(a)) != shape[depth] {
			return fmt.Errorf("%q is not rectangular", field)
		}
		for _, e := range a {
			if err := walk(e, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(arr, 0); err != nil {
		return nil, err
	}
	return leavesTensor(name, dt, shape, leaves)
}

func leavesTensor(name string, dt tensor.DType, shape []int64, leaves []any) (*tensor.Tensor, error) {
	bad := func(i int, v any) error {
		return fmt.Errorf("prediction %d is %v, not a %s value", i, v, dt)
	}
	switch dt {
	case tensor.Bytes:
		out := make([][]byte, len(leaves))
		for i, v := range leaves {
			s, ok := v.(string)
			if !ok {
				return nil, bad(i, v)
			}
			out[i] = []byte(s)
		}
		return &tensor.Tensor{Name: name, DType: dt, Shape: shape, Data: out}, nil
	case tensor.Int64, tensor.Int32, tensor.Int16, tensor.Int8, tensor.Uint8, tensor.Uint16, tensor.Uint32, tensor.Uint64, tensor.Bool:
		// Integers exactly (float64 would round those above 2^53).
		t, err := tensor.New(name, dt, shape)
		if err != nil {
			return nil, err
		}
		for i, v := range leaves {
			// x is the value; big is set instead for one above MaxInt64.
			var x int64
			var big uint64
			switch v := v.(type) {
			case json.Number:
				var err error
				if x, err = strconv.ParseInt(string(v), 10, 64); err == nil {
				} else if big, err = strconv.ParseUint(string(v), 10, 64); err == nil {
				} else if f, ferr := v.Float64(); ferr == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
					x = int64(f)
				} else {
					return nil, bad(i, v)
				}
			case bool:
				if v {
					x = 1
				}
			default:
				return nil, bad(i, v)
			}
			if !setInt(t, i, x, big) {
				return nil, fmt.Errorf("prediction %d (%v) does not fit %s", i, v, dt)
			}
		}
		return t, nil
	}
	vals := make([]float64, len(leaves))
	for i, v := range leaves {
		switch v := v.(type) {
		case json.Number:
			f, err := v.Float64()
			if err != nil {
				return nil, bad(i, v)
			}
			vals[i] = f
		case bool:
			if v {
				vals[i] = 1
			}
		default:
			return nil, bad(i, v)
		}
	}
	return tensor.FromFloat64s(name, dt, shape, vals)
}

// setInt stores element i of an integer or Bool tensor: x, or big when
// big is not zero (a value above MaxInt64). It reports whether it fits.
func setInt(t *tensor.Tensor, i int, x int64, big uint64) bool {
	if big != 0 {
		if d, ok := t.Data.([]uint64); ok {
			d[i] = big
			return true
		}
		return false
	}
	switch d := t.Data.(type) {
	case []bool:
		d[i] = x != 0
		return x == 0 || x == 1
	case []int8:
		d[i] = int8(x)
		return x == int64(d[i])
	case []int16:
		d[i] = int16(x)
		return x == int64(d[i])
	case []int32:
		d[i] = int32(x)
		return x == int64(d[i])
	case []int64:
		d[i] = x
		return true
	case []uint8:
		d[i] = uint8(x)
		return x >= 0 && x == int64(d[i])
	case []uint16:
		d[i] = uint16(x)
		return x >= 0 && x == int64(d[i])
	case []uint32:
		d[i] = uint32(x)
		return x >= 0 && x == int64(d[i])
	case []uint64:
		d[i] = uint64(x)
		return x >= 0
	}
	return false
}
