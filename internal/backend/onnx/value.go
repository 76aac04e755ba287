package onnx

import (
	"fmt"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// Kind says what a Value holds. The zero value is KindNone, an absent
// optional value.
type Kind uint8

const (
	// KindNone is an absent value (an optional input that is not given).
	KindNone Kind = iota
	// KindTensor is a tensor, in Value.Tensor.
	KindTensor
	// KindSequence is a sequence of values, in Value.Seq.
	KindSequence
	// KindMap is a map from Value.Keys[i] to Value.Tensor's element i; both
	// are 1-D tensors of the same length, keys INT64 or BYTES (ONNX STRING).
	KindMap
)

// numDTypes bounds tensor.DType values, for Value's per-type buffers.
const numDTypes = int(tensor.Bytes) + 1

// Value is what flows along an edge of the graph: a tensor, a sequence or a
// map. The executor owns one Value per edge and per execution state, and
// kernels write their outputs into those Values with Resize and the typed
// accessors, so that once every buffer has grown to its steady-state size a
// run allocates nothing.
//
// The zero value is an absent value (KindNone). A Value is not safe for
// concurrent use; an execution state (and so every Value in it) is used by
// one goroutine at a time.
type Value struct {
	Kind Kind
	// Tensor is the tensor of a KindTensor value, or the values of a
	// KindMap value. Its Data is always the typed slice internal/tensor
	// documents (ONNX STRING is tensor.Bytes, FLOAT16 is tensor.FP16).
	Tensor tensor.Tensor
	// Keys are the keys of a KindMap value.
	Keys tensor.Tensor
	// Seq holds the elements of a KindSequence value.
	Seq []*Value

	// bufs keeps, per element type, the largest slice this Value has held,
	// so that Resize reuses it; gens counts its reallocations, and boxes
	// caches recent views of it (see buffer).
	bufs  [numDTypes]any
	gens  [numDTypes]uint32
	boxes [boxCache]box
	next  int
	// seqBuf keeps every element Value ever allocated by ResizeSeq.
	seqBuf []*Value
	// limit, when positive, bounds the elements Resize accepts (constant
	// folding sets it, so that a hostile model cannot make the loader
	// allocate past its memory limit).
	limit int
}

// Resize makes v a tensor of type dt and the given shape, reusing v's
// buffer for dt when it is large enough. The elements' contents are
// unspecified (they hold whatever an earlier run left): kernels must write
// every element, or call Zero. shape is copied, so it may be scratch
// memory. Resize returns an error wrapping tensor.ErrShape for a negative
// dimension or too many elements, and tensor.ErrDType for an invalid type.
func (v *Value) Resize(dt tensor.DType, shape []int64) error {
	n, err := tensor.NumElements(shape)
	if err != nil {
		return err
	}
	if v.limit > 0 && n > v.limit {
		return fmt.Errorf("%w: %v has more than the %d elements allowed here", tensor.ErrShape, shape, v.limit)
	}
	if dt == tensor.Invalid || int(dt) >= numDTypes {
		return fmt.Errorf("%w %v", tensor.ErrDType, dt)
	}
	v.Kind = KindTensor
	v.Tensor.DType = dt
	v.Tensor.Shape = append(v.Tensor.Shape[:0], shape...)
	v.Tensor.Data = v.buffer(dt, n)
	return nil
}

// boxCache is how many (type, length) views of its buffers a Value keeps
// boxed: a slot shared by several values by liveness alternates between a
// few lengths, and each must not allocate again.
const boxCache = 8

// box is a typed slice already stored in an interface (boxing a slice
// header allocates).
type box struct {
	dt   tensor.DType
	n    int
	gen  uint32
	data any
}

// buffer returns a slice of n elements of type dt from v's buffers,
// growing them when needed. Repeated calls with lengths seen recently
// return the same interface value and allocate nothing.
func (v *Value) buffer(dt tensor.DType, n int) any {
	for i := range v.boxes {
		b := &v.boxes[i]
		if b.data != nil && b.dt == dt && b.n == n && b.gen == v.gens[dt] {
			return b.data
		}
	}
	var data any
	var grew bool
	switch dt {
	case tensor.Bool:
		data, grew = growSlice[bool](&v.bufs[dt], n)
	case tensor.Uint8:
		data, grew = growSlice[uint8](&v.bufs[dt], n)
	case tensor.Uint16, tensor.FP16:
		data, grew = growSlice[uint16](&v.bufs[dt], n)
	case tensor.Uint32:
		data, grew = growSlice[uint32](&v.bufs[dt], n)
	case tensor.Uint64:
		data, grew = growSlice[uint64](&v.bufs[dt], n)
	case tensor.Int8:
		data, grew = growSlice[int8](&v.bufs[dt], n)
	case tensor.Int16:
		data, grew = growSlice[int16](&v.bufs[dt], n)
	case tensor.Int32:
		data, grew = growSlice[int32](&v.bufs[dt], n)
	case tensor.Int64:
		data, grew = growSlice[int64](&v.bufs[dt], n)
	case tensor.FP32:
		data, grew = growSlice[float32](&v.bufs[dt], n)
	case tensor.FP64:
		data, grew = growSlice[float64](&v.bufs[dt], n)
	case tensor.Bytes:
		data, grew = growSlice[[]byte](&v.bufs[dt], n)
	default:
		panic(fmt.Sprintf("onnx: buffer of %v", dt))
	}
	if grew {
		v.gens[dt]++ // views of the old buffer are stale
	}
	v.boxes[v.next] = box{dt: dt, n: n, gen: v.gens[dt], data: data}
	v.next = (v.next + 1) % boxCache
	return data
}

// growSlice returns the buffer in *slot resized to n (boxed, which
// allocates), reallocating it when its capacity is too small; grew says
// whether it did.
func growSlice[T any](slot *any, n int) (any, bool) {
	s, _ := (*slot).([]T)
	grew := false
	if cap(s) < n || s == nil {
		s = make([]T, n, n+n/4)
		*slot = s
		grew = true
	}
	return s[:n], grew
}

// Zero sets every element of v's tensor to its zero value.
func (v *Value) Zero() {
	switch d := v.Tensor.Data.(type) {
	case []float32:
		clear(d)
	case []float64:
		clear(d)
	case []int64:
		clear(d)
	case []int32:
		clear(d)
	case []bool:
		clear(d)
	case []uint8:
		clear(d)
	case []uint16:
		clear(d)
	case []uint32:
		clear(d)
	case []uint64:
		clear(d)
	case []int8:
		clear(d)
	case []int16:
		clear(d)
	case [][]byte:
		clear(d)
	}
}

// ResizeSeq makes v a sequence of n elements, reusing element Values from
// earlier runs. The elements keep their previous kind and contents until the
// kernel overwrites them.
func (v *Value) ResizeSeq(n int) {
	for len(v.seqBuf) < n {
		v.seqBuf = append(v.seqBuf, new(Value))
	}
	v.Kind = KindSequence
	v.Seq = v.seqBuf[:n]
}

// SetTensor makes v refer to t's data and shape without copying (for graph
// inputs and constants, which kernels only read).
func (v *Value) SetTensor(t *tensor.Tensor) {
	v.Kind = KindTensor
	v.Tensor = *t
}

// CopyFrom makes v a deep copy of src (a tensor, sequence or map), reusing
// v's buffers. Byte strings are shared, not copied: kernels never modify
// the bytes of a string element.
func (v *Value) CopyFrom(src *Value) error {
	switch src.Kind {
	case KindNone:
		v.Kind = KindNone
		return nil
	case KindTensor:
		if err := v.Resize(src.Tensor.DType, src.Tensor.Shape); err != nil {
			return err
		}
		copyData(v.Tensor.Data, src.Tensor.Data)
		return nil
	case KindMap:
		// Keys are immutable in every kernel that makes maps; share them.
		if err := v.Resize(src.Tensor.DType, src.Tensor.Shape); err != nil {
			return err
		}
		copyData(v.Tensor.Data, src.Tensor.Data)
		v.Kind = KindMap
		v.Keys = src.Keys
		return nil
	case KindSequence:
		v.ResizeSeq(len(src.Seq))
		for i, e := range src.Seq {
			if err := v.Seq[i].CopyFrom(e); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("onnx: copy of value kind %d", src.Kind)
}

// copyData copies src into dst, two slices of the same type and length.
func copyData(dst, src any) {
	switch d := dst.(type) {
	case []float32:
		copy(d, src.([]float32))
	case []float64:
		copy(d, src.([]float64))
	case []int64:
		copy(d, src.([]int64))
	case []int32:
		copy(d, src.([]int32))
	case []bool:
		copy(d, src.([]bool))
	case []uint8:
		copy(d, src.([]uint8))
	case []uint16:
		copy(d, src.([]uint16))
	case []uint32:
		copy(d, src.([]uint32))
	case []uint64:
		copy(d, src.([]uint64))
	case []int8:
		copy(d, src.([]int8))
	case []int16:
		copy(d, src.([]int16))
	case [][]byte:
		copy(d, src.([][]byte))
	default:
		panic(fmt.Sprintf("onnx: copyData of %T", dst))
	}
}

// Float32s returns v's tensor data as []float32; it panics if v is not an
// FP32 tensor (kernels check types when they start).
func (v *Value) Float32s() []float32 { return v.Tensor.Data.([]float32) }

// Float64s returns v's tensor data as []float64.
func (v *Value) Float64s() []float64 { return v.Tensor.Data.([]float64) }

// Int64s returns v's tensor data as []int64.
func (v *Value) Int64s() []int64 { return v.Tensor.Data.([]int64) }

// Int32s returns v's tensor data as []int32.
func (v *Value) Int32s() []int32 { return v.Tensor.Data.([]int32) }

// Bools returns v's tensor data as []bool.
func (v *Value) Bools() []bool { return v.Tensor.Data.([]bool) }

// Strings returns v's tensor data as [][]byte (ONNX STRING).
func (v *Value) Strings() [][]byte { return v.Tensor.Data.([][]byte) }

// Shape returns v's tensor shape (nil for a scalar).
func (v *Value) Shape() []int64 { return v.Tensor.Shape }

// DType returns v's tensor element type.
func (v *Value) DType() tensor.DType { return v.Tensor.DType }

// Len returns the number of elements of v's tensor.
func (v *Value) Len() int {
	n := 1
	for _, d := range v.Tensor.Shape {
		n *= int(d)
	}
	return n
}

// String describes v for error messages: "FP32[2 3]", "seq(3)", "map".
func (v *Value) String() string {
	switch v.Kind {
	case KindNone:
		return "none"
	case KindTensor:
		return fmt.Sprintf("%v%v", v.Tensor.DType, v.Tensor.Shape)
	case KindSequence:
		return fmt.Sprintf("seq(%d)", len(v.Seq))
	case KindMap:
		return fmt.Sprintf("map(%v->%v)", v.Keys.DType, v.Tensor.DType)
	}
	return fmt.Sprintf("Kind(%d)", v.Kind)
}
