package tensor

import (
	"errors"
	"fmt"
	"math"
)

// Errors returned by this package. Callers at a protocol boundary map them to
// a client error (HTTP 400).
var (
	ErrDType = errors.New("tensor: unknown datatype")
	ErrShape = errors.New("tensor: bad shape")
	ErrData  = errors.New("tensor: data does not match shape")
)

// MaxElements bounds the element count of one tensor, so that a crafted shape
// cannot make a decoder allocate without limit.
const MaxElements = 1 << 31

// Tensor is a named, typed, shaped array. Data holds a slice whose Go type
// follows DType:
//
//	Bool   []bool      Uint8  []uint8   Uint16 []uint16  Uint32 []uint32
//	Uint64 []uint64    Int8   []int8    Int16  []int16   Int32  []int32
//	Int64  []int64     FP16   []uint16 (IEEE half bits)   FP32  []float32
//	FP64   []float64   Bytes  [][]byte
//
// in row-major order. A Tensor is a value with no hidden state; it is not safe
// to mutate from several goroutines at once.
type Tensor struct {
	Name  string
	DType DType
	Shape []int64
	Data  any
}

// NumElements returns the number of elements of shape, or an error wrapping
// ErrShape for a negative dimension or a product above MaxElements.
func NumElements(shape []int64) (int, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("%w: negative dimension %d in %v", ErrShape, d, shape)
		}
		if d != 0 && n > MaxElements/d {
			return 0, fmt.Errorf("%w: %v has more than %d elements", ErrShape, shape, int64(MaxElements))
		}
		n *= d
	}
	if n > MaxElements {
		return 0, fmt.Errorf("%w: %v has more than %d elements", ErrShape, shape, int64(MaxElements))
	}
	return int(n), nil
}

// New returns a zero-filled tensor of the given type and shape.
func New(name string, dt DType, shape []int64) (*Tensor, error) {
	n, err := NumElements(shape)
	if err != nil {
		return nil, err
	}
	data, err := makeData(dt, n)
	if err != nil {
		return nil, err
	}
	return &Tensor{Name: name, DType: dt, Shape: append([]int64(nil), shape...), Data: data}, nil
}

func makeData(dt DType, n int) (any, error) {
	switch dt {
	case Bool:
		return make([]bool, n), nil
	case Uint8:
		return make([]uint8, n), nil
	case Uint16, FP16:
		return make([]uint16, n), nil
	case Uint32:
		return make([]uint32, n), nil
	case Uint64:
		return make([]uint64, n), nil
	case Int8:
		return make([]int8, n), nil
	case Int16:
		return make([]int16, n), nil
	case Int32:
		return make([]int32, n), nil
	case Int64:
		return make([]int64, n), nil
	case FP32:
		return make([]float32, n), nil
	case FP64:
		return make([]float64, n), nil
	case Bytes:
		return make([][]byte, n), nil
	}
	return nil, fmt.Errorf("%w %v", ErrDType, dt)
}

// Len returns the number of elements held in Data, or -1 if Data does not
// have the Go type that DType requires.
func (t *Tensor) Len() int {
	switch d := t.Data.(type) {
	case []bool:
		return lenIf(t.DType == Bool, len(d))
	case []uint8:
		return lenIf(t.DType == Uint8, len(d))
	case []uint16:
		return lenIf(t.DType == Uint16 || t.DType == FP16, len(d))
	case []uint32:
		return lenIf(t.DType == Uint32, len(d))
	case []uint64:
		return lenIf(t.DType == Uint64, len(d))
	case []int8:
		return lenIf(t.DType == Int8, len(d))
	case []int16:
		return lenIf(t.DType == Int16, len(d))
	case []int32:
		return lenIf(t.DType == Int32, len(d))
	case []int64:
		return lenIf(t.DType == Int64, len(d))
	case []float32:
		return lenIf(t.DType == FP32, len(d))
	case []float64:
		return lenIf(t.DType == FP64, len(d))
	case [][]byte:
		return lenIf(t.DType == Bytes, len(d))
	}
	return -1
}

func lenIf(ok bool, n int) int {
	if ok {
		return n
	}
	return -1
}

// Validate reports whether Data has the Go type DType requires and as many
// elements as Shape says.
func (t *Tensor) Validate() error {
	n, err := NumElements(t.Shape)
	if err != nil {
		return err
	}
	got := t.Len()
	if got < 0 {
		return fmt.Errorf("%w: %s data held as %T", ErrData, t.DType, t.Data)
	}
	if got != n {
		return fmt.Errorf("%w: shape %v needs %d elements, got %d", ErrData, t.Shape, n, got)
	}
	return nil
}

// Float32s returns the elements of a numeric or boolean tensor as float32.
// It returns Data itself (not a copy) when DType is FP32.
func (t *Tensor) Float32s() ([]float32, error) {
	if d, ok := t.Data.([]float32); ok && t.DType == FP32 {
		return d, nil
	}
	out := make([]float32, max(t.Len(), 0))
	if err := t.each(func(i int, v float64) { out[i] = float32(v) }); err != nil {
		return nil, err
	}
	return out, nil
}

// Float64s returns the elements of a numeric or boolean tensor as float64.
// It returns Data itself (not a copy) when DType is FP64.
func (t *Tensor) Float64s() ([]float64, error) {
	if d, ok := t.Data.([]float64); ok && t.DType == FP64 {
		return d, nil
	}
	out := make([]float64, max(t.Len(), 0))
	if err := t.each(func(i int, v float64) { out[i] = v }); err != nil {
		return nil, err
	}
	return out, nil
}

// each calls f with every element of a numeric tensor converted to float64.
func (t *Tensor) each(f func(i int, v float64)) error {
	switch d := t.Data.(type) {
	case []bool:
		for i, v := range d {
			if v {
				f(i, 1)
			} else {
				f(i, 0)
			}
		}
	case []uint8:
		eachNum(d, f)
	case []uint16:
		if t.DType == FP16 {
			for i, v := range d {
				f(i, float64(Float16ToFloat32(v)))
			}
		} else {
			eachNum(d, f)
		}
	case []uint32:
		eachNum(d, f)
	case []uint64:
		eachNum(d, f)
	case []int8:
		eachNum(d, f)
	case []int16:
		eachNum(d, f)
	case []int32:
		eachNum(d, f)
	case []int64:
		eachNum(d, f)
	case []float32:
		eachNum(d, f)
	case []float64:
		eachNum(d, f)
	default:
		return fmt.Errorf("%w: %s is not numeric", ErrDType, t.DType)
	}
	return nil
}

type number interface {
	~uint8 | ~uint16 | ~uint32 | ~uint64 | ~int8 | ~int16 | ~int32 | ~int64 | ~float32 | ~float64
}

func eachNum[T number](d []T, f func(int, float64)) {
	for i, v := range d {
		f(i, float64(v))
	}
}

// FromFloat64s returns a tensor of type dt holding vals converted to dt
// (rounded toward zero for integers, nonzero is true for Bool). It is the
// inverse of Float64s for values dt can hold.
func FromFloat64s(name string, dt DType, shape []int64, vals []float64) (*Tensor, error) {
	t, err := New(name, dt, shape)
	if err != nil {
		return nil, err
	}
	if len(vals) != t.Len() {
		return nil, fmt.Errorf("%w: shape %v needs %d elements, got %d", ErrData, shape, t.Len(), len(vals))
	}
	switch d := t.Data.(type) {
	case []bool:
		for i, v := range vals {
			d[i] = v != 0
		}
	case []uint8:
		setNum(d, vals)
	case []uint16:
		if dt == FP16 {
			for i, v := range vals {
				d[i] = Float32ToFloat16(float32(v))
			}
		} else {
			setNum(d, vals)
		}
	case []uint32:
		setNum(d, vals)
	case []uint64:
		setNum(d, vals)
	case []int8:
		setNum(d, vals)
	case []int16:
		setNum(d, vals)
	case []int32:
		setNum(d, vals)
	case []int64:
		setNum(d, vals)
	case []float32:
		setNum(d, vals)
	case []float64:
		copy(d, vals)
	default:
		return nil, fmt.Errorf("%w: %s is not numeric", ErrDType, dt)
	}
	return t, nil
}

func setNum[T number](d []T, vals []float64) {
	for i, v := range vals {
		if math.IsNaN(v) {
			v = 0
		}
		d[i] = T(v)
	}
}
