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
			a, b := in[0], in[1]
			if err := checkType("A", a, numericTypes...); err != nil {
				return err
			}
			if b.Kind != KindTensor || b.Tensor.DType != a.Tensor.DType {
				return badInput("B: want %v, got %v", a.Tensor.DType, b)
			}
			shape, err := BroadcastShape(tmp.Shape(max(len(a.Tensor.Shape), len(b.Tensor.Shape))), a.Tensor.Shape, b.Tensor.Shape)
			if err != nil {
				return err
			}
			if err := out[0].Resize(a.Tensor.DType, shape); err != nil {
				return err
			}
			o := out[0]
			switch a.Tensor.DType {
			case tensor.FP32:
				return arith(op, o.Float32s(), a.Float32s(), b.Float32s(), o.Tensor.Shape, a.Tensor.Shape, b.Tensor.Shape)
			case tensor.FP64:
				return arith(op, o.Float64s(), a.Float64s(), b.Float64s(), o.Tensor.Shape, a.Tensor.Shape, b.Tensor.Shape)
			case tensor.Int32:
				return arith(op, o.Int32s(), a.Int32s(), b.Int32s(), o.Tensor.Shape, a.Tensor.Shape, b.Tensor.Shape)
			case tensor.Int64:
				return arith(op, o.Int64s(), a.Int64s(), b.Int64s(), o.Tensor.Shape, a.Tensor.Shape, b.Tensor.Shape)
			case tensor.Int8:
				return arith(op, o.Tensor.Data.([]int8), a.Tensor.Data.([]int8), b.Tensor.Data.([]int8), o.Tensor.Shape, a.Tensor.Shape, b.Tensor.Shape)
			case tensor.Int16:
				return arith(op, o.Tensor.Data.([]int16), a.Tensor.Data.([]int16), b.Tensor.Data.([]int16), o.Tensor.Shape, a.Tensor.Shape, b.Tensor.Shape)
			case tensor.Uint8:
				return arith(op, o.Tensor.Data.([]uint8), a.Tensor.Data.([]uint8), b.Tensor.Data.([]uint8), o.Tensor.Shape, a.Tensor.Shape, b.Tensor.Shape)
			case tensor.Uint16:
				return arith(op, o.Tensor.Data.([]uint16), a.Tensor.Data.([]uint16), b.Tensor.Data.([]uint16), o.Tensor.Shape, a.Tensor.Shape, b.Tensor.Shape)
			case tensor.Uint32:
				return arith(op, o.Tensor.Data.([]uint32), a.Tensor.Data.([]uint32), b.Tensor.Data.([]uint32), o.Tensor.Shape, a.Tensor.Shape, b.Tensor.Shape)
			case tensor.Uint64:
				return arith(op, o.Tensor.Data.([]uint64), a.Tensor.Data.([]uint64), b.Tensor.Data.([]uint64), o.Tensor.Shape, a.Tensor.Shape, b.Tensor.Shape)
			case tensor.FP16:
				return arithFP16(tmp, op, o, a, b)
			}
			return badInput("element type %v", a.Tensor.DType)
		}, nil
	}
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
func arithFP16(tmp *Scratch, op arithOp, o, a, b *Value) error {
	na, nb := a.Len(), b.Len()
	buf := tmp.Float32s(na + nb + o.Len())
	fa, fb, fo := buf[:na], buf[na:na+nb], buf[na+nb:]
	for i, h := range a.Tensor.Data.([]uint16) {
		fa[i] = tensor.Float16ToFloat32(h)
	}
	for i, h := range b.Tensor.Data.([]uint16) {
		fb[i] = tensor.Float16ToFloat32(h)
	}
	if err := arith(op, fo, fa, fb, o.Tensor.Shape, a.Tensor.Shape, b.Tensor.Shape); err != nil {
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
