package onnx

import (
	"github.com/shoal-ml/shoal/internal/tensor"
)

// basicOps are the arithmetic and plumbing operators of the default domain
// that every converter emits.
func basicOps() []Op {
	return []Op{
		{Domain: DomainONNX, Type: "Add", Since: 7, New: newArith(opAdd)},
		{Domain: DomainONNX, Type: "Sub", Since: 7, New: newArith(opSub)},
		{Domain: DomainONNX, Type: "Mul", Since: 7, New: newArith(opMul)},
		{Domain: DomainONNX, Type: "Div", Since: 7, New: newArith(opDiv)},
		{Domain: DomainONNX, Type: "Add", Since: 6, Until: 6, New: newLegacyArith(opAdd)},
		{Domain: DomainONNX, Type: "Sub", Since: 6, Until: 6, New: newLegacyArith(opSub)},
		{Domain: DomainONNX, Type: "Mul", Since: 6, Until: 6, New: newLegacyArith(opMul)},
		{Domain: DomainONNX, Type: "Div", Since: 6, Until: 6, New: newLegacyArith(opDiv)},
		{Domain: DomainONNX, Type: "Identity", Since: 1, New: newIdentity},
		{Domain: DomainONNX, Type: "MatMul", Since: 1, New: newMatMul},
		{Domain: DomainONNX, Type: "Relu", Since: 6, New: newUnary("Relu")},
	}
}

// number is every element type arithmetic operators accept.
type number interface {
	~float32 | ~float64 | ~int8 | ~int16 | ~int32 | ~int64 | ~uint8 | ~uint16 | ~uint32 | ~uint64
}

type arithOp uint8

const (
	opAdd arithOp = iota
	opSub
	opMul
	opDiv
)

// numericTypes are the element types of Add, Sub, Mul and Div (FP16 is
// computed in float32).
var numericTypes = []tensor.DType{tensor.FP32, tensor.FP64, tensor.Int32, tensor.Int64,
	tensor.Int8, tensor.Int16, tensor.Uint8, tensor.Uint16, tensor.Uint32, tensor.Uint64, tensor.FP16}

func newArith(op arithOp) func(n *Node) (Kernel, error) {
	return func(n *Node) (Kernel, error) {
		return func(tmp *Scratch, in, out []*Value) error {
			if in[1].Kind != KindTensor {
				return badInput("B: want a tensor, got %v", in[1])
			}
			return runArith(tmp, op, in[0], in[1], in[1].Tensor.Shape, out[0])
		}, nil
	}
}

// newLegacyArith implements Add, Sub, Mul and Div of opset 6, whose
// broadcasting is opt-in (broadcast=1) and aligns B with A's dimensions
// starting at axis (by default, with A's last dimensions).
func newLegacyArith(op arithOp) func(n *Node) (Kernel, error) {
	return func(n *Node) (Kernel, error) {
		bcast := n.Attrs.Int("broadcast", 0) != 0
		hasAxis := n.Attrs.Has("axis")
		axis := n.Attrs.Int("axis", 0)
		return func(tmp *Scratch, in, out []*Value) error {
			a, b := in[0], in[1]
			if a.Kind != KindTensor || b.Kind != KindTensor {
				return badInput("%v and %v", a, b)
			}
			bs := b.Tensor.Shape
			switch {
			case !bcast:
				if !equalShape(a.Tensor.Shape, bs) {
					return badInput("shapes %v and %v differ and broadcast=0", a.Tensor.Shape, bs)
				}
			case hasAxis:
				r := len(a.Tensor.Shape)
				ax := int(axis)
				if ax < 0 {
					ax += r
				}
				if ax < 0 || ax+len(bs) > r {
					return badInput("B %v does not fit A %v at axis %d", bs, a.Tensor.Shape, axis)
				}
				// Pad B's shape with trailing ones so that numpy
				// broadcasting aligns it at axis.
				padded := tmp.Int64s(r - ax)
				copy(padded, bs)
				for i := len(bs); i < len(padded); i++ {
					padded[i] = 1
				}
				bs = padded
			}
			return runArith(tmp, op, a, b, bs, out[0])
		}, nil
	}
}

// runArith computes o = a op b, b read with shape bs (b's own shape, or a
// legacy-broadcast view of it).
func runArith(tmp *Scratch, op arithOp, a, b *Value, bs []int64, o *Value) error {
	if err := checkType("A", a, numericTypes...); err != nil {
		return err
	}
	if b.Tensor.DType != a.Tensor.DType {
		return badInput("B: want %v, got %v", a.Tensor.DType, b)
	}
	as := a.Tensor.Shape
	shape, err := BroadcastShape(tmp.Shape(max(len(as), len(bs))), as, bs)
	if err != nil {
		return err
	}
	if err := o.Resize(a.Tensor.DType, shape); err != nil {
		return err
	}
	os := o.Tensor.Shape
	switch a.Tensor.DType {
	case tensor.FP32:
		return arith(op, o.Float32s(), a.Float32s(), b.Float32s(), os, as, bs)
	case tensor.FP64:
		return arith(op, o.Float64s(), a.Float64s(), b.Float64s(), os, as, bs)
	case tensor.Int32:
		return arith(op, o.Int32s(), a.Int32s(), b.Int32s(), os, as, bs)
	case tensor.Int64:
		return arith(op, o.Int64s(), a.Int64s(), b.Int64s(), os, as, bs)
	case tensor.Int8:
		return arith(op, o.Tensor.Data.([]int8), a.Tensor.Data.([]int8), b.Tensor.Data.([]int8), os, as, bs)
	case tensor.Int16:
		return arith(op, o.Tensor.Data.([]int16), a.Tensor.Data.([]int16), b.Tensor.Data.([]int16), os, as, bs)
	case tensor.Uint8:
		return arith(op, o.Tensor.Data.([]uint8), a.Tensor.Data.([]uint8), b.Tensor.Data.([]uint8), os, as, bs)
	case tensor.Uint16:
		return arith(op, o.Tensor.Data.([]uint16), a.Tensor.Data.([]uint16), b.Tensor.Data.([]uint16), os, as, bs)
	case tensor.Uint32:
		return arith(op, o.Tensor.Data.([]uint32), a.Tensor.Data.([]uint32), b.Tensor.Data.([]uint32), os, as, bs)
	case tensor.Uint64:
		return arith(op, o.Tensor.Data.([]uint64), a.Tensor.Data.([]uint64), b.Tensor.Data.([]uint64), os, as, bs)
	case tensor.FP16:
		return arithFP16(tmp, op, o, a, b, bs)
	}
	return badInput("element type %v", a.Tensor.DType)
}

// arith computes out = a op b with broadcasting.
func arith[T number](op arithOp, out, a, b []T, so, sa, sb []int64) error {
	if op == opDiv && isInt[T]() {
		for _, v := range b {
			if v == 0 {
				return badInput("integer division by zero")
			}
		}
	}
	ForEachRun(so, sa, sb, func(o, ia, ka, ib, kb, n int) {
		arithRun(op, out[o:o+n], a[ia:], ka, b[ib:], kb)
	})
	return nil
}

func isInt[T number]() bool {
	var one T = 1
	return one/2 == 0
}

// arithRun computes out[j] = a[j*ka] op b[j*kb], ka and kb each 0 or 1.
func arithRun[T number](op arithOp, out, a []T, ka int, b []T, kb int) {
	n := len(out)
	switch {
	case ka == 1 && kb == 1:
		a, b = a[:n], b[:n]
		switch op {
		case opAdd:
			for i := range out {
				out[i] = a[i] + b[i]
			}
		case opSub:
			for i := range out {
				out[i] = a[i] - b[i]
			}
		case opMul:
			for i := range out {
				out[i] = a[i] * b[i]
			}
		case opDiv:
			for i := range out {
				out[i] = a[i] / b[i]
			}
		}
	case ka == 1:
		a = a[:n]
		y := b[0]
		switch op {
		case opAdd:
			for i := range out {
				out[i] = a[i] + y
			}
		case opSub:
			for i := range out {
				out[i] = a[i] - y
			}
		case opMul:
			for i := range out {
				out[i] = a[i] * y
			}
		case opDiv:
			for i := range out {
				out[i] = a[i] / y
			}
		}
	case kb == 1:
		b = b[:n]
		x := a[0]
		switch op {
		case opAdd:
			for i := range out {
				out[i] = x + b[i]
			}
		case opSub:
			for i := range out {
				out[i] = x - b[i]
			}
		case opMul:
			for i := range out {
				out[i] = x * b[i]
			}
		case opDiv:
			for i := range out {
				out[i] = x / b[i]
			}
		}
	default:
		var v T
		switch op {
		case opAdd:
			v = a[0] + b[0]
		case opSub:
			v = a[0] - b[0]
		case opMul:
			v = a[0] * b[0]
		case opDiv:
			v = a[0] / b[0]
		}
		for i := range out {
			out[i] = v
		}
	}
}

// arithFP16 computes a half-precision operation in float32, rounding the
// result back to half precision.
func arithFP16(tmp *Scratch, op arithOp, o, a, b *Value, bs []int64) error {
	na, nb := a.Len(), b.Len()
	buf := tmp.Float32s(na + nb + o.Len())
	fa, fb, fo := buf[:na], buf[na:na+nb], buf[na+nb:]
	for i, h := range a.Tensor.Data.([]uint16) {
		fa[i] = tensor.Float16ToFloat32(h)
	}
	for i, h := range b.Tensor.Data.([]uint16) {
		fb[i] = tensor.Float16ToFloat32(h)
	}
	if err := arith(op, fo, fa, fb, o.Tensor.Shape, a.Tensor.Shape, bs); err != nil {
		return err
	}
	for i, f := range fo {
		o.Tensor.Data.([]uint16)[i] = tensor.Float32ToFloat16(f)
	}
	return nil
}

// newIdentity copies its input (a tensor, sequence or map) to its output.
func newIdentity(n *Node) (Kernel, error) {
	return func(tmp *Scratch, in, out []*Value) error {
		return out[0].CopyFrom(in[0])
	}, nil
}
