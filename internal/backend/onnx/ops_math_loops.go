package onnx

import (
	"github.com/shoal-ml/shoal/internal/tensor"
)

// The typed loops behind the element-wise operators of ops_math.go. An
// operator gives one scalar function per arithmetic domain (signed,
// unsigned, floating point); the loops convert each element type to its
// domain (int64, uint64, float64), so one function covers every width.
// FP16 is widened to float64 in scratch memory and rounded back.

// calcDomain is the arithmetic an element is computed in.
type calcDomain interface{ int64 | uint64 | float64 }

// scalarFuncs is a scalar operation per domain, with result type R (a
// domain type for arithmetic, bool for comparisons); a nil field means the
// operator rejects element types of that domain.
type scalarFuncs[R any] struct {
	i func(a, b int64) R
	u func(a, b uint64) R
	f func(a, b float64) R
	// s compares byte strings (ONNX STRING); nil for most operators.
	s func(a, b []byte) R
}

// binLoop computes dst[o] = f(a, b) over shape (the broadcast shape), a and
// b read through sa and sb. dst may alias a when a is not broadcast.
func binLoop[T number, C calcDomain, R any](dst []R, a, b []T, shape []int64, sa, sb *strides, f func(C, C) R) {
	r := len(shape)
	as, bs := 0, 0
	if r > 0 {
		as, bs = sa[r-1], sb[r-1]
	}
	walk3(shape, sa, sb, nil, func(o, ao, bo, _, n int) {
		d := dst[o : o+n]
		switch {
		case as == 1 && bs == 1:
			x, y := a[ao:ao+n], b[bo:bo+n]
			for j := range d {
				d[j] = f(C(x[j]), C(y[j]))
			}
		case as == 1 && bs == 0:
			x, y := a[ao:ao+n], C(b[bo])
			for j := range d {
				d[j] = f(C(x[j]), y)
			}
		default:
			for j := range d {
				d[j] = f(C(a[ao+j*as]), C(b[bo+j*bs]))
			}
		}
	})
}

// binTyped runs binLoop with a result converted to T.
func binTyped[T number, C calcDomain](dst, a, b []T, shape []int64, sa, sb *strides, f func(C, C) C) bool {
	if f == nil {
		return false
	}
	binLoop(dst, a, b, shape, sa, sb, func(x, y C) T { return T(f(x, y)) })
	return true
}

// binBool runs binLoop for a comparison.
func binBool[T number, C calcDomain](dst []bool, a, b []T, shape []int64, sa, sb *strides, f func(C, C) bool) bool {
	if f == nil {
		return false
	}
	binLoop(dst, a, b, shape, sa, sb, f)
	return true
}

// arith computes out = op(a, b) with broadcasting, a and b of one number
// type, out of that type. out may be a (then a must already have out's
// shape), for folding variadic operators.
func mathArith(tmp *Scratch, out *Value, a, b *tensor.Tensor, op scalarFuncs[int64], opu func(x, y uint64) uint64, opf func(x, y float64) float64) error {
	if a.DType != b.DType {
		return badInput("operand types %v and %v differ", a.DType, b.DType)
	}
	shape, err := broadcastAll(tmp.Shape(MaxRank), a.Shape, b.Shape)
	if err != nil {
		return err
	}
	if &out.Tensor != a {
		if err := out.Resize(a.DType, shape); err != nil {
			return err
		}
		shape = out.Tensor.Shape
	}
	sa, sb := bcastStrides(a.Shape, shape), bcastStrides(b.Shape, shape)
	ok := false
	switch d := out.Tensor.Data.(type) {
	case []float32:
		ok = binTyped(d, a.Data.([]float32), b.Data.([]float32), shape, &sa, &sb, opf)
	case []float64:
		ok = binTyped(d, a.Data.([]float64), b.Data.([]float64), shape, &sa, &sb, opf)
	case []int8:
		ok = binTyped(d, a.Data.([]int8), b.Data.([]int8), shape, &sa, &sb, op.i)
	case []int16:
		ok = binTyped(d, a.Data.([]int16), b.Data.([]int16), shape, &sa, &sb, op.i)
	case []int32:
		ok = binTyped(d, a.Data.([]int32), b.Data.([]int32), shape, &sa, &sb, op.i)
	case []int64:
		ok = binTyped(d, a.Data.([]int64), b.Data.([]int64), shape, &sa, &sb, op.i)
	case []uint8:
		ok = binTyped(d, a.Data.([]uint8), b.Data.([]uint8), shape, &sa, &sb, opu)
	case []uint32:
		ok = binTyped(d, a.Data.([]uint32), b.Data.([]uint32), shape, &sa, &sb, opu)
	case []uint64:
		ok = binTyped(d, a.Data.([]uint64), b.Data.([]uint64), shape, &sa, &sb, opu)
	case []uint16:
		if out.Tensor.DType != tensor.FP16 {
			ok = binTyped(d, a.Data.([]uint16), b.Data.([]uint16), shape, &sa, &sb, opu)
			break
		}
		if opf == nil {
			break
		}
		x, y := a.Data.([]uint16), b.Data.([]uint16)
		binLoop(d, x, y, shape, &sa, &sb, func(p, q uint64) uint16 {
			r := opf(float64(tensor.Float16ToFloat32(uint16(p))), float64(tensor.Float16ToFloat32(uint16(q))))
			return tensor.Float32ToFloat16(float32(r))
		})
		ok = true
	}
	if !ok {
		return badInput("element type %v not supported", a.DType)
	}
	return nil
}

// compare computes the BOOL out = op(a, b) with broadcasting.
func mathCompare(tmp *Scratch, out *Value, a, b *tensor.Tensor, op scalarFuncs[bool]) error {
	if a.DType != b.DType {
		return badInput("operand types %v and %v differ", a.DType, b.DType)
	}
	shape, err := broadcastAll(tmp.Shape(MaxRank), a.Shape, b.Shape)
	if err != nil {
		return err
	}
	if err := out.Resize(tensor.Bool, shape); err != nil {
		return err
	}
	shape = out.Tensor.Shape
	dst := out.Tensor.Data.([]bool)
	sa, sb := bcastStrides(a.Shape, shape), bcastStrides(b.Shape, shape)
	ok := false
	switch x := a.Data.(type) {
	case []float32:
		ok = binBool(dst, x, b.Data.([]float32), shape, &sa, &sb, op.f)
	case []float64:
		ok = binBool(dst, x, b.Data.([]float64), shape, &sa, &sb, op.f)
	case []int8:
		ok = binBool(dst, x, b.Data.([]int8), shape, &sa, &sb, op.i)
	case []int16:
		ok = binBool(dst, x, b.Data.([]int16), shape, &sa, &sb, op.i)
	case []int32:
		ok = binBool(dst, x, b.Data.([]int32), shape, &sa, &sb, op.i)
	case []int64:
		ok = binBool(dst, x, b.Data.([]int64), shape, &sa, &sb, op.i)
	case []uint8:
		ok = binBool(dst, x, b.Data.([]uint8), shape, &sa, &sb, op.u)
	case []uint32:
		ok = binBool(dst, x, b.Data.([]uint32), shape, &sa, &sb, op.u)
	case []uint64:
		ok = binBool(dst, x, b.Data.([]uint64), shape, &sa, &sb, op.u)
	case []uint16:
		if a.DType != tensor.FP16 {
			ok = binBool(dst, x, b.Data.([]uint16), shape, &sa, &sb, op.u)
			break
		}
		if op.f == nil {
			break
		}
		binLoop(dst, x, b.Data.([]uint16), shape, &sa, &sb, func(p, q uint64) bool {
			return op.f(float64(tensor.Float16ToFloat32(uint16(p))), float64(tensor.Float16ToFloat32(uint16(q))))
		})
		ok = true
	case []bool:
		if op.u == nil {
			break
		}
		y := b.Data.([]bool)
		r := len(shape)
		as, bs := 0, 0
		if r > 0 {
			as, bs = sa[r-1], sb[r-1]
		}
		walk3(shape, &sa, &sb, nil, func(o, ao, bo, _, n int) {
			for j := range n {
				dst[o+j] = op.u(b2u(x[ao+j*as]), b2u(y[bo+j*bs]))
			}
		})
		ok = true
	case [][]byte:
		if op.s == nil {
			break
		}
		y := b.Data.([][]byte)
		r := len(shape)
		as, bs := 0, 0
		if r > 0 {
			as, bs = sa[r-1], sb[r-1]
		}
		walk3(shape, &sa, &sb, nil, func(o, ao, bo, _, n int) {
			for j := range n {
				dst[o+j] = op.s(x[ao+j*as], y[bo+j*bs])
			}
		})
		ok = true
	}
	if !ok {
		return badInput("element type %v not supported", a.DType)
	}
	return nil
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// unaryTyped computes dst[i] = f(src[i]) in calcDomain C.
func unaryTyped[T number, C calcDomain](dst, src []T, f func(C) C) bool {
	if f == nil {
		return false
	}
	for i, v := range src {
		dst[i] = T(f(C(v)))
	}
	return true
}

// mathUnaryFuncs is a unary operation per calcDomain.
type mathUnaryFuncs struct {
	i func(int64) int64
	u func(uint64) uint64
	f func(float64) float64
}

// unary computes out = op(in) element-wise, out of in's type and shape.
func mathUnary(out, in *Value, op mathUnaryFuncs) error {
	if in.Kind != KindTensor {
		return badInput("want a tensor, got %v", in)
	}
	if err := out.Resize(in.Tensor.DType, in.Tensor.Shape); err != nil {
		return err
	}
	ok := false
	switch d := out.Tensor.Data.(type) {
	case []float32:
		ok = unaryTyped(d, in.Tensor.Data.([]float32), op.f)
	case []float64:
		ok = unaryTyped(d, in.Tensor.Data.([]float64), op.f)
	case []int8:
		ok = unaryTyped(d, in.Tensor.Data.([]int8), op.i)
	case []int16:
		ok = unaryTyped(d, in.Tensor.Data.([]int16), op.i)
	case []int32:
		ok = unaryTyped(d, in.Tensor.Data.([]int32), op.i)
	case []int64:
		ok = unaryTyped(d, in.Tensor.Data.([]int64), op.i)
	case []uint8:
		ok = unaryTyped(d, in.Tensor.Data.([]uint8), op.u)
	case []uint32:
		ok = unaryTyped(d, in.Tensor.Data.([]uint32), op.u)
	case []uint64:
		ok = unaryTyped(d, in.Tensor.Data.([]uint64), op.u)
	case []uint16:
		if in.Tensor.DType != tensor.FP16 {
			ok = unaryTyped(d, in.Tensor.Data.([]uint16), op.u)
			break
		}
		if op.f == nil {
			break
		}
		for i, v := range in.Tensor.Data.([]uint16) {
			d[i] = tensor.Float32ToFloat16(float32(op.f(float64(tensor.Float16ToFloat32(v)))))
		}
		ok = true
	}
	if !ok {
		return badInput("element type %v not supported", in.Tensor.DType)
	}
	return nil
}

// floatsOf returns the elements of a number or BOOL tensor widened to
// float64 in buf (FP16 decoded).
func floatsOf(t *tensor.Tensor, buf []float64) []float64 {
	switch d := t.Data.(type) {
	case []float32:
		widen(buf, d)
	case []float64:
		copy(buf, d)
	case []int8:
		widen(buf, d)
	case []int16:
		widen(buf, d)
	case []int32:
		widen(buf, d)
	case []int64:
		widen(buf, d)
	case []uint8:
		widen(buf, d)
	case []uint32:
		widen(buf, d)
	case []uint64:
		widen(buf, d)
	case []uint16:
		if t.DType == tensor.FP16 {
			for i, v := range d {
				buf[i] = float64(tensor.Float16ToFloat32(v))
			}
		} else {
			widen(buf, d)
		}
	case []bool:
		for i, v := range d {
			buf[i] = float64(b2u(v))
		}
	}
	return buf
}

func widen[T number](dst []float64, src []T) {
	for i, v := range src {
		dst[i] = float64(v)
	}
}

func narrow[T number](dst []T, src []float64) {
	for i, v := range src {
		dst[i] = T(v)
	}
}

// storeFloats writes vals into t's typed data (rounded to FP16, truncated
// toward zero for integers, nonzero as true for BOOL).
func storeFloats(t *tensor.Tensor, vals []float64) {
	switch d := t.Data.(type) {
	case []float32:
		narrow(d, vals)
	case []float64:
		copy(d, vals)
	case []int8:
		narrow(d, vals)
	case []int16:
		narrow(d, vals)
	case []int32:
		narrow(d, vals)
	case []int64:
		narrow(d, vals)
	case []uint8:
		narrow(d, vals)
	case []uint32:
		narrow(d, vals)
	case []uint64:
		narrow(d, vals)
	case []uint16:
		if t.DType == tensor.FP16 {
			for i, v := range vals {
				d[i] = tensor.Float32ToFloat16(float32(v))
			}
		} else {
			narrow(d, vals)
		}
	case []bool:
		for i, v := range vals {
			d[i] = v != 0
		}
	}
}
