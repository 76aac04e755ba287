package oip

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"unsafe"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// ParseData decodes the "data" member of a JSON tensor, nested or flat, into
// a typed slice for dt (see tensor.Tensor). It also returns the shape implied
// by the nesting (a flat list gives a rank-1 shape, a scalar rank 0) and
// rejects ragged nesting. Floats also accept the strings "NaN", "Inf",
// "-Inf", "Infinity" and "-Infinity", and null as NaN (a missing value).
func ParseData(raw []byte, dt tensor.DType) (data any, shape []int64, err error) {
	p := dataParser{s: raw, leaf: -1}
	p.sink, err = newSink(dt)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	p.skipSpace()
	if err := p.value(0); err != nil {
		return nil, nil, fmt.Errorf("%w: data: %w", ErrBadRequest, err)
	}
	p.skipSpace()
	if p.i != len(p.s) {
		return nil, nil, fmt.Errorf("%w: data: unexpected %q after value", ErrBadRequest, p.s[p.i])
	}
	return p.sink.result(), p.dims, nil
}

type dataParser struct {
	s    []byte
	i    int
	sink sink
	dims []int64 // length at each depth, from the first array seen there
	leaf int     // depth of scalars, -1 until the first scalar
}

const maxDataDepth = 32

func (p *dataParser) skipSpace() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *dataParser) value(depth int) error {
	if p.i >= len(p.s) {
		return fmt.Errorf("unexpected end")
	}
	if p.s[p.i] == '[' {
		return p.array(depth)
	}
	if p.leaf < 0 {
		p.leaf = depth
	} else if p.leaf != depth {
		return fmt.Errorf("ragged nesting: scalar at depth %d, expected %d", depth, p.leaf)
	}
	tok, str, err := p.token()
	if err != nil {
		return err
	}
	if !str && !jsonLiteral(tok) {
		return fmt.Errorf("invalid value %q", tok)
	}
	return p.sink.add(tok, str)
}

func (p *dataParser) array(depth int) error {
	if depth >= maxDataDepth {
		return fmt.Errorf("nested deeper than %d", maxDataDepth)
	}
	if p.leaf >= 0 && depth >= p.leaf {
		return fmt.Errorf("ragged nesting: array at depth %d, scalars at %d", depth, p.leaf)
	}
	p.i++ // '['
	if depth == len(p.dims) {
		p.dims = append(p.dims, -1) // length set when the first array here ends
	}
	n := int64(0)
	p.skipSpace()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
	} else {
		for {
			p.skipSpace()
			if err := p.value(depth + 1); err != nil {
				return err
			}
			n++
			p.skipSpace()
			if p.i >= len(p.s) {
				return fmt.Errorf("unexpected end in array")
			}
			c := p.s[p.i]
			p.i++
			if c == ']' {
				break
			}
			if c != ',' {
				return fmt.Errorf("unexpected %q in array", c)
			}
		}
	}
	if p.dims[depth] == -1 {
		p.dims[depth] = n
	} else if p.dims[depth] != n {
		return fmt.Errorf("ragged nesting: length %d at depth %d, expected %d", n, depth, p.dims[depth])
	}
	if n == 0 && p.leaf < 0 {
		// An empty array fixes its depth as the innermost one.
		p.leaf = depth + 1
	}
	return nil
}

// token returns the next scalar token; for a string it returns the
// unescaped contents and str=true.
func (p *dataParser) token() (tok []byte, str bool, err error) {
	start := p.i
	if p.s[p.i] == '"' {
		p.i++
		escaped := false
		for p.i < len(p.s) {
			c := p.s[p.i]
			if c == '\\' {
				escaped = true
				p.i += 2
				continue
			}
			if c == '"' {
				p.i++
				if !escaped {
					return p.s[start+1 : p.i-1], true, nil
				}
				var s string
				if err := json.Unmarshal(p.s[start:p.i], &s); err != nil {
					return nil, false, fmt.Errorf("bad string: %w", err)
				}
				return []byte(s), true, nil
			}
			if c < 0x20 {
				return nil, false, fmt.Errorf("control character in string")
			}
			p.i++
		}
		return nil, false, fmt.Errorf("unterminated string")
	}
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ',', ']', ' ', '\t', '\n', '\r':
			return p.s[start:p.i], false, nil
		}
		p.i++
	}
	return p.s[start:p.i], false, nil
}

// jsonLiteral reports whether tok is a JSON number, true, false or null, so
// that the parser accepts no more than JSON does (strconv would also take
// "0x1p3", "+1", "Inf" or "01").
func jsonLiteral(tok []byte) bool {
	switch str(tok) {
	case "true", "false", "null":
		return true
	}
	i := 0
	if i < len(tok) && tok[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(tok) && tok[i] >= '0' && tok[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(tok) && tok[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(tok) && tok[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(tok) && (tok[i] == 'e' || tok[i] == 'E') {
		i++
		if i < len(tok) && (tok[i] == '+' || tok[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(tok)
}

type sink interface {
	add(tok []byte, str bool) error
	result() any
}

func newSink(dt tensor.DType) (sink, error) {
	switch dt {
	case tensor.Bool:
		return &boolSink{}, nil
	case tensor.Uint8:
		return &uintSink[uint8]{bits: 8}, nil
	case tensor.Uint16:
		return &uintSink[uint16]{bits: 16}, nil
	case tensor.Uint32:
		return &uintSink[uint32]{bits: 32}, nil
	case tensor.Uint64:
		return &uintSink[uint64]{bits: 64}, nil
	case tensor.Int8:
		return &intSink[int8]{bits: 8}, nil
	case tensor.Int16:
		return &intSink[int16]{bits: 16}, nil
	case tensor.Int32:
		return &intSink[int32]{bits: 32}, nil
	case tensor.Int64:
		return &intSink[int64]{bits: 64}, nil
	case tensor.FP16:
		return &fp16Sink{}, nil
	case tensor.FP32:
		return &floatSink[float32]{bits: 32}, nil
	case tensor.FP64:
		return &floatSink[float64]{bits: 64}, nil
	case tensor.Bytes:
		return &bytesSink{}, nil
	}
	return nil, fmt.Errorf("%w %v", tensor.ErrDType, dt)
}

func str(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func parseFloat(tok []byte, quoted bool, bits int) (float64, error) {
	if quoted {
		switch str(tok) {
		case "NaN", "nan":
			return math.NaN(), nil
		case "Inf", "Infinity", "inf", "+Inf":
			return math.Inf(1), nil
		case "-Inf", "-Infinity", "-inf":
			return math.Inf(-1), nil
		}
		return 0, fmt.Errorf("expected a number, got string %q", tok)
	}
	if str(tok) == "null" {
		// null is a missing value, as numpy's asarray(..., dtype=float)
		// reads it in the founding Flask app.
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(str(tok), bits)
	if err != nil {
		return 0, fmt.Errorf("expected a number, got %q", tok)
	}
	return v, nil
}

type floatSink[T float32 | float64] struct {
	bits int
	out  []T
}

func (s *floatSink[T]) add(tok []byte, quoted bool) error {
	v, err := parseFloat(tok, quoted, s.bits)
	if err != nil {
		return err
	}
	s.out = append(s.out, T(v))
	return nil
}
func (s *floatSink[T]) result() any { return nonNil(s.out) }

type fp16Sink struct{ out []uint16 }

func (s *fp16Sink) add(tok []byte, quoted bool) error {
	v, err := parseFloat(tok, quoted, 32)
	if err != nil {
		return err
	}
	s.out = append(s.out, tensor.Float32ToFloat16(float32(v)))
	return nil
}
func (s *fp16Sink) result() any { return nonNil(s.out) }

type intSink[T int8 | int16 | int32 | int64] struct {
	bits int
	out  []T
}

func (s *intSink[T]) add(tok []byte, quoted bool) error {
	if quoted {
		return fmt.Errorf("expected an integer, got string %q", tok)
	}
	v, err := strconv.ParseInt(str(tok), 10, s.bits)
	if err != nil {
		return fmt.Errorf("expected an int%d, got %q", s.bits, tok)
	}
	s.out = append(s.out, T(v))
	return nil
}
func (s *intSink[T]) result() any { return nonNil(s.out) }

type uintSink[T uint8 | uint16 | uint32 | uint64] struct {
	bits int
	out  []T
}

func (s *uintSink[T]) add(tok []byte, quoted bool) error {
	if quoted {
		return fmt.Errorf("expected an integer, got string %q", tok)
	}
	v, err := strconv.ParseUint(str(tok), 10, s.bits)
	if err != nil {
		return fmt.Errorf("expected a uint%d, got %q", s.bits, tok)
	}
	s.out = append(s.out, T(v))
	return nil
}
func (s *uintSink[T]) result() any { return nonNil(s.out) }

type boolSink struct{ out []bool }

func (s *boolSink) add(tok []byte, quoted bool) error {
	switch {
	case !quoted && str(tok) == "true":
		s.out = append(s.out, true)
	case !quoted && str(tok) == "false":
		s.out = append(s.out, false)
	default:
		return fmt.Errorf("expected true or false, got %q", tok)
	}
	return nil
}
func (s *boolSink) result() any { return nonNil(s.out) }

type bytesSink struct{ out [][]byte }

func (s *bytesSink) add(tok []byte, quoted bool) error {
	if !quoted {
		return fmt.Errorf("expected a string, got %q", tok)
	}
	s.out = append(s.out, append([]byte(nil), tok...))
	return nil
}
func (s *bytesSink) result() any { return nonNil(s.out) }

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
