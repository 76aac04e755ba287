package onnx

import (
	"fmt"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// This file holds the index arithmetic shared by the data-movement and
// element-wise operators of the ops_shape, ops_math, ops_reduce and ops_nn
// files: strides in fixed arrays (so that they allocate nothing), and a walk
// over an output in row-major order that reads up to three operands through
// arbitrary (zero for broadcast, negative for reversed) strides.

// strides holds the per-dimension element strides of one operand.
type strides [MaxRank]int

// rowStrides returns the row-major strides of shape.
func rowStrides(shape []int64) strides {
	var s strides
	n := 1
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = n
		n *= int(shape[i])
	}
	return s
}

// bcastStrides returns the strides through which an operand of shape in is
// read when broadcast to out (numpy rules): 0 on broadcast dimensions.
func bcastStrides(in, out []int64) strides {
	var r strides
	st := rowStrides(in)
	off := len(out) - len(in)
	for i, d := range in {
		if d != 1 {
			r[off+i] = st[i]
		}
	}
	return r
}

// numel returns the product of shape (1 for a scalar).
func numel(shape []int64) int {
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	return n
}

// normAxis maps a possibly negative axis into [0, rank).
func normAxis(axis int64, rank int) (int, error) {
	a := int(axis)
	if a < 0 {
		a += rank
	}
	if a < 0 || a >= rank {
		return 0, badInput("axis %d out of range for rank %d", axis, rank)
	}
	return a, nil
}

// broadcastAll writes into dst (room for MaxRank dims) the broadcast of
// shapes and returns it.
func broadcastAll(dst []int64, shapes ...[]int64) ([]int64, error) {
	rank := 0
	for _, s := range shapes {
		rank = max(rank, len(s))
	}
	if rank > MaxRank {
		return nil, badInput("rank %d above %d", rank, MaxRank)
	}
	dst = dst[:rank]
	for i := range dst {
		dst[i] = 1
	}
	for _, s := range shapes {
		off := rank - len(s)
		for i, d := range s {
			o := &dst[off+i]
			switch {
			case d == *o || d == 1:
			case *o == 1:
				*o = d
			default:
				return nil, badInput("dimensions %d and %d do not broadcast", d, *o)
			}
		}
	}
	return dst, nil
}

// walk3 calls fn(o, a, b, c, n) for each innermost run of a row-major
// iteration over shape: o is the output offset of the run's first element
// and a, b, c the offsets of the run's first element in three operands read
// through sa, sb, sc (nil for an unused operand). Within a run, operand k
// advances by its last stride. A scalar shape gives one run of one element;
// a shape with a zero dimension gives none.
func walk3(shape []int64, sa, sb, sc *strides, fn func(o, a, b, c, n int)) {
	rank := len(shape)
	if rank == 0 {
		fn(0, 0, 0, 0, 1)
		return
	}
	total := numel(shape)
	if total == 0 {
		return
	}
	var zero strides
	if sa == nil {
		sa = &zero
	}
	if sb == nil {
		sb = &zero
	}
	if sc == nil {
		sc = &zero
	}
	inner := int(shape[rank-1])
	var idx [MaxRank]int
	a, b, c := 0, 0, 0
	for o := 0; o < total; o += inner {
		fn(o, a, b, c, inner)
		for d := rank - 2; d >= 0; d-- {
			idx[d]++
			a += sa[d]
			b += sb[d]
			c += sc[d]
			if idx[d] < int(shape[d]) {
				break
			}
			a -= sa[d] * idx[d]
			b -= sb[d] * idx[d]
			c -= sc[d] * idx[d]
			idx[d] = 0
		}
	}
}

// gatherStrided writes into dst (row-major over shape) the elements of src
// read from offset base through st.
func gatherStrided[T any](dst, src []T, shape []int64, st *strides, base int) {
	last := 0
	if len(shape) > 0 {
		last = st[len(shape)-1]
	}
	walk3(shape, st, nil, nil, func(o, a, _, _, n int) {
		s := base + a
		if last == 1 {
			copy(dst[o:o+n], src[s:s+n])
			return
		}
		for j := range n {
			dst[o+j] = src[s+j*last]
		}
	})
}

// copyStrided is gatherStrided over typed slices dst and src of the same
// Go type (any of those tensor.Tensor documents).
func copyStrided(dst, src any, shape []int64, st *strides, base int) {
	switch d := dst.(type) {
	case []float32:
		gatherStrided(d, src.([]float32), shape, st, base)
	case []float64:
		gatherStrided(d, src.([]float64), shape, st, base)
	case []int64:
		gatherStrided(d, src.([]int64), shape, st, base)
	case []int32:
		gatherStrided(d, src.([]int32), shape, st, base)
	case []bool:
		gatherStrided(d, src.([]bool), shape, st, base)
	case []uint8:
		gatherStrided(d, src.([]uint8), shape, st, base)
	case []uint16:
		gatherStrided(d, src.([]uint16), shape, st, base)
	case []uint32:
		gatherStrided(d, src.([]uint32), shape, st, base)
	case []uint64:
		gatherStrided(d, src.([]uint64), shape, st, base)
	case []int8:
		gatherStrided(d, src.([]int8), shape, st, base)
	case []int16:
		gatherStrided(d, src.([]int16), shape, st, base)
	case [][]byte:
		gatherStrided(d, src.([][]byte), shape, st, base)
	default:
		panic(fmt.Sprintf("onnx: copyStrided of %T", dst))
	}
}

// copyRange copies n elements from src[so:] to dst[do:] for typed slices
// of the same Go type.
func copyRange(dst any, do int, src any, so, n int) {
	switch d := dst.(type) {
	case []float32:
		copy(d[do:do+n], src.([]float32)[so:so+n])
	case []float64:
		copy(d[do:do+n], src.([]float64)[so:so+n])
	case []int64:
		copy(d[do:do+n], src.([]int64)[so:so+n])
	case []int32:
		copy(d[do:do+n], src.([]int32)[so:so+n])
	case []bool:
		copy(d[do:do+n], src.([]bool)[so:so+n])
	case []uint8:
		copy(d[do:do+n], src.([]uint8)[so:so+n])
	case []uint16:
		copy(d[do:do+n], src.([]uint16)[so:so+n])
	case []uint32:
		copy(d[do:do+n], src.([]uint32)[so:so+n])
	case []uint64:
		copy(d[do:do+n], src.([]uint64)[so:so+n])
	case []int8:
		copy(d[do:do+n], src.([]int8)[so:so+n])
	case []int16:
		copy(d[do:do+n], src.([]int16)[so:so+n])
	case [][]byte:
		copy(d[do:do+n], src.([][]byte)[so:so+n])
	default:
		panic(fmt.Sprintf("onnx: copyRange of %T", dst))
	}
}

// intsOf returns the elements of an INT64 or INT32 tensor value (shape,
// axes, indices and similar inputs) as int64, converting INT32 into buf.
func intsOf(v *Value, buf []int64) ([]int64, error) {
	if v.Kind != KindTensor {
		return nil, badInput("want an integer tensor, got %v", v)
	}
	switch d := v.Tensor.Data.(type) {
	case []int64:
		return d, nil
	case []int32:
		if cap(buf) < len(d) {
			buf = make([]int64, len(d))
		}
		buf = buf[:len(d)]
		for i, x := range d {
			buf[i] = int64(x)
		}
		return buf, nil
	}
	return nil, badInput("want an integer tensor, got %v", v)
}

// isFloat reports whether dt is a floating-point type.
func isFloat(dt tensor.DType) bool {
	return dt == tensor.FP32 || dt == tensor.FP64 || dt == tensor.FP16
}

// anyTypes lists every element type data-movement operators accept.
var anyTypes = []tensor.DType{tensor.Bool, tensor.Uint8, tensor.Uint16, tensor.Uint32, tensor.Uint64,
	tensor.Int8, tensor.Int16, tensor.Int32, tensor.Int64, tensor.FP16, tensor.FP32, tensor.FP64, tensor.Bytes}

// numTypes lists every numeric element type.
var numTypes = anyTypes[1:12]

// floatTypes lists the floating-point element types.
var floatTypes = []tensor.DType{tensor.FP16, tensor.FP32, tensor.FP64}

// copyValue makes out a copy of in's tensor (Identity-like operators).
func copyValue(out, in *Value) error {
	if err := out.Resize(in.Tensor.DType, in.Tensor.Shape); err != nil {
		return err
	}
	copyData(out.Tensor.Data, in.Tensor.Data)
	return nil
}

// attrError returns an error wrapping ErrAttr.
func attrError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrAttr}, args...)...)
}

// unsupported returns an error wrapping ErrUnsupported.
func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUnsupported}, args...)...)
}

// takeIndex sets dst[i] = src[idx[i]].
func takeIndex[T any](dst, src []T, idx []int64) {
	for i, j := range idx {
		dst[i] = src[j]
	}
}

// copyIndexed is takeIndex over typed slices dst and src of the same Go
// type.
func copyIndexed(dst, src any, idx []int64) {
	switch d := dst.(type) {
	case []float32:
		takeIndex(d, src.([]float32), idx)
	case []float64:
		takeIndex(d, src.([]float64), idx)
	case []int64:
		takeIndex(d, src.([]int64), idx)
	case []int32:
		takeIndex(d, src.([]int32), idx)
	case []bool:
		takeIndex(d, src.([]bool), idx)
	case []uint8:
		takeIndex(d, src.([]uint8), idx)
	case []uint16:
		takeIndex(d, src.([]uint16), idx)
	case []uint32:
		takeIndex(d, src.([]uint32), idx)
	case []uint64:
		takeIndex(d, src.([]uint64), idx)
	case []int8:
		takeIndex(d, src.([]int8), idx)
	case []int16:
		takeIndex(d, src.([]int16), idx)
	case [][]byte:
		takeIndex(d, src.([][]byte), idx)
	default:
		panic(fmt.Sprintf("onnx: copyIndexed of %T", dst))
	}
}

// tensorValue checks that v is a tensor and returns it.
func tensorValue(what string, v *Value) (*tensor.Tensor, error) {
	if v.Kind != KindTensor {
		return nil, badInput("%s: want a tensor, got %v", what, v)
	}
	return &v.Tensor, nil
}

// scalarInt returns the single element of an integer tensor.
func scalarInt(what string, v *Value) (int64, error) {
	if v.Kind != KindTensor || v.Len() != 1 {
		return 0, badInput("%s: want one integer, got %v", what, v)
	}
	switch d := v.Tensor.Data.(type) {
	case []int64:
		return d[0], nil
	case []int32:
		return int64(d[0]), nil
	}
	return 0, badInput("%s: want an integer, got %v", what, v)
}
