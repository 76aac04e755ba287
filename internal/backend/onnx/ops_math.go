package onnx

import (
	"bytes"
	"math"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// mathOps are the element-wise math, comparison, logic and bitwise
// operators beyond the arithmetic of ops_basic.go: Pow, Mod, the rounding
// and trigonometric functions, the variadic Max, Min, Sum and Mean, the
// comparisons and the boolean and bitwise operators.
func mathOps() []Op {
	ops := []Op{
		{Domain: DomainONNX, Type: "Pow", Since: 7, New: newPow},
		{Domain: DomainONNX, Type: "Mod", Since: 10, New: newMod},
		{Domain: DomainONNX, Type: "IsNaN", Since: 9, New: newIsNaN},
		{Domain: DomainONNX, Type: "IsInf", Since: 10, New: newIsInf},
		{Domain: DomainONNX, Type: "Not", Since: 1, New: newNot},
		{Domain: DomainONNX, Type: "BitShift", Since: 11, New: newBitShift},
		{Domain: DomainONNX, Type: "BitwiseNot", Since: 18, New: newBitwiseNot},
		{Domain: DomainONNX, Type: "CastLike", Since: 15, New: newCastLike},
	}
	ops = append(ops, quantOps()...)
	ops = append(ops, dftOps()...)
	for _, u := range []struct {
		typ   string
		since int64
		f     mathUnaryFuncs
	}{
		{"Floor", 6, mathUnaryFuncs{f: math.Floor}},
		{"Ceil", 6, mathUnaryFuncs{f: math.Ceil}},
		{"Round", 11, mathUnaryFuncs{f: math.RoundToEven}},
		{"Reciprocal", 6, mathUnaryFuncs{f: func(x float64) float64 { return 1 / x }}},
		{"Erf", 9, mathUnaryFuncs{f: math.Erf}},
		{"Sin", 7, mathUnaryFuncs{f: math.Sin}},
		{"Cos", 7, mathUnaryFuncs{f: math.Cos}},
		{"Tan", 7, mathUnaryFuncs{f: math.Tan}},
		{"Asin", 7, mathUnaryFuncs{f: math.Asin}},
		{"Acos", 7, mathUnaryFuncs{f: math.Acos}},
		{"Atan", 7, mathUnaryFuncs{f: math.Atan}},
		{"Sinh", 9, mathUnaryFuncs{f: math.Sinh}},
		{"Cosh", 9, mathUnaryFuncs{f: math.Cosh}},
		{"Asinh", 9, mathUnaryFuncs{f: math.Asinh}},
		{"Acosh", 9, mathUnaryFuncs{f: math.Acosh}},
		{"Atanh", 9, mathUnaryFuncs{f: math.Atanh}},
		{"Sign", 9, mathUnaryFuncs{
			i: func(x int64) int64 { return int64(cmpSign(x)) },
			u: func(x uint64) uint64 { return uint64(cmpSign(x)) },
			f: func(x float64) float64 {
				if x != x {
					return x
				}
				return float64(cmpSign(x))
			},
		}},
	} {
		ops = append(ops, Op{Domain: DomainONNX, Type: u.typ, Since: u.since, New: newMathUnary(u.f)})
	}
	for _, c := range []struct {
		typ   string
		since int64
		f     scalarFuncs[bool]
	}{
		{"Equal", 7, scalarFuncs[bool]{
			i: func(a, b int64) bool { return a == b },
			u: func(a, b uint64) bool { return a == b },
			f: func(a, b float64) bool { return a == b },
			s: bytes.Equal,
		}},
		{"Less", 7, scalarFuncs[bool]{
			i: func(a, b int64) bool { return a < b },
			u: func(a, b uint64) bool { return a < b },
			f: func(a, b float64) bool { return a < b },
		}},
		{"Greater", 7, scalarFuncs[bool]{
			i: func(a, b int64) bool { return a > b },
			u: func(a, b uint64) bool { return a > b },
			f: func(a, b float64) bool { return a > b },
		}},
		{"LessOrEqual", 12, scalarFuncs[bool]{
			i: func(a, b int64) bool { return a <= b },
			u: func(a, b uint64) bool { return a <= b },
			f: func(a, b float64) bool { return a <= b },
		}},
		{"GreaterOrEqual", 12, scalarFuncs[bool]{
			i: func(a, b int64) bool { return a >= b },
			u: func(a, b uint64) bool { return a >= b },
			f: func(a, b float64) bool { return a >= b },
		}},
	} {
		ops = append(ops, Op{Domain: DomainONNX, Type: c.typ, Since: c.since, New: newCompare(c.f, nil)})
	}
	for _, c := range []struct {
		typ string
		f   func(a, b uint64) bool
	}{
		{"And", func(a, b uint64) bool { return a&b != 0 }},
		{"Or", func(a, b uint64) bool { return a|b != 0 }},
		{"Xor", func(a, b uint64) bool { return a^b != 0 }},
	} {
		ops = append(ops, Op{Domain: DomainONNX, Type: c.typ, Since: 7,
			New: newCompare(scalarFuncs[bool]{u: c.f}, []tensor.DType{tensor.Bool})})
	}
	for _, c := range []struct {
		typ string
		i   func(a, b int64) int64
		u   func(a, b uint64) uint64
	}{
		{"BitwiseAnd", func(a, b int64) int64 { return a & b }, func(a, b uint64) uint64 { return a & b }},
		{"BitwiseOr", func(a, b int64) int64 { return a | b }, func(a, b uint64) uint64 { return a | b }},
		{"BitwiseXor", func(a, b int64) int64 { return a ^ b }, func(a, b uint64) uint64 { return a ^ b }},
	} {
		ops = append(ops, Op{Domain: DomainONNX, Type: c.typ, Since: 18,
			New: newBinaryArith(scalarFuncs[int64]{i: c.i}, c.u, nil)})
	}
	for _, v := range []struct {
		typ string
		i   func(a, b int64) int64
		u   func(a, b uint64) uint64
		f   func(a, b float64) float64
	}{
		{"Max", func(a, b int64) int64 { return max(a, b) }, func(a, b uint64) uint64 { return max(a, b) }, fmax},
		{"Min", func(a, b int64) int64 { return min(a, b) }, func(a, b uint64) uint64 { return min(a, b) }, fmin},
		{"Sum", func(a, b int64) int64 { return a + b }, func(a, b uint64) uint64 { return a + b }, func(a, b float64) float64 { return a + b }},
		{"Mean", nil, nil, func(a, b float64) float64 { return a + b }},
	} {
		ops = append(ops, Op{Domain: DomainONNX, Type: v.typ, Since: 6,
			New: newVariadic(v.typ == "Mean", scalarFuncs[int64]{i: v.i}, v.u, v.f)})
	}
	return ops
}

// fmax and fmin propagate NaN, as numpy's maximum and minimum do.
func fmax(a, b float64) float64 {
	if a != a || b != b {
		return math.NaN()
	}
	return max(a, b)
}

func fmin(a, b float64) float64 {
	if a != a || b != b {
		return math.NaN()
	}
	return min(a, b)
}

func cmpSign[T int64 | uint64 | float64](x T) int {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return 0
}

func newMathUnary(f mathUnaryFuncs) func(n *Node) (Kernel, error) {
	return func(n *Node) (Kernel, error) {
		return func(tmp *Scratch, in, out []*Value) error {
			return mathUnary(out[0], in[0], f)
		}, nil
	}
}

// newCompare builds a comparison; types, when set, restricts the operand
// types (BOOL for And, Or, Xor).
func newCompare(f scalarFuncs[bool], types []tensor.DType) func(n *Node) (Kernel, error) {
	return func(n *Node) (Kernel, error) {
		return func(tmp *Scratch, in, out []*Value) error {
			a, b := in[0], in[1]
			if a.Kind != KindTensor || b.Kind != KindTensor {
				return badInput("want tensors, got %v and %v", a, b)
			}
			if types != nil {
				if err := checkType("operand", a, types...); err != nil {
					return err
				}
			}
			return mathCompare(tmp, out[0], &a.Tensor, &b.Tensor, f)
		}, nil
	}
}

func newBinaryArith(fi scalarFuncs[int64], fu func(a, b uint64) uint64, ff func(a, b float64) float64) func(n *Node) (Kernel, error) {
	return func(n *Node) (Kernel, error) {
		return func(tmp *Scratch, in, out []*Value) error {
			a, b := in[0], in[1]
			if a.Kind != KindTensor || b.Kind != KindTensor {
				return badInput("want tensors, got %v and %v", a, b)
			}
			return mathArith(tmp, out[0], &a.Tensor, &b.Tensor, fi, fu, ff)
		}, nil
	}
}

// newVariadic builds Max, Min, Sum and Mean: a fold of the binary operation
// over every input with multidirectional broadcasting. mean divides by the
// number of inputs.
func newVariadic(mean bool, fi scalarFuncs[int64], fu func(a, b uint64) uint64, ff func(a, b float64) float64) func(n *Node) (Kernel, error) {
	return func(n *Node) (Kernel, error) {
		return func(tmp *Scratch, in, out []*Value) error {
			if len(in) == 0 {
				return badInput("no inputs")
			}
			shape := tmp.Shape(MaxRank)[:0]
			for _, v := range in {
				if v.Kind != KindTensor {
					return badInput("want tensors, got %v", v)
				}
				s, err := BroadcastShape(tmp.Int64s(MaxRank), shape, v.Tensor.Shape)
				if err != nil {
					return err
				}
				shape = append(shape[:0], s...)
			}
			o := out[0]
			if err := o.Resize(in[0].Tensor.DType, shape); err != nil {
				return err
			}
			first := &in[0].Tensor
			st := bcastStrides(first.Shape, o.Tensor.Shape)
			copyStrided(o.Tensor.Data, first.Data, o.Tensor.Shape, &st, 0)
			for _, v := range in[1:] {
				if err := mathArith(tmp, o, &o.Tensor, &v.Tensor, fi, fu, ff); err != nil {
					return err
				}
			}
			if mean && len(in) > 1 {
				k := float64(len(in))
				return mathUnary(o, o, mathUnaryFuncs{f: func(x float64) float64 { return x / k }})
			}
			return nil
		}, nil
	}
}

// newPow builds Pow: the base and the exponent may have different numeric
// types; the result has the base's type, computed in float64.
func newPow(n *Node) (Kernel, error) {
	return func(tmp *Scratch, in, out []*Value) error {
		a, b := in[0], in[1]
		if err := checkType("Pow base", a, numericTypes...); err != nil {
			return err
		}
		if err := checkType("Pow exponent", b, numericTypes...); err != nil {
			return err
		}
		shape, err := BroadcastShape(tmp.Shape(MaxRank), a.Tensor.Shape, b.Tensor.Shape)
		if err != nil {
			return err
		}
		if err := out[0].Resize(a.Tensor.DType, shape); err != nil {
			return err
		}
		shape = out[0].Tensor.Shape
		na, nb, no := a.Len(), b.Len(), out[0].Len()
		buf := tmp.Float64s(na + nb + no)
		x := floatsOf(&a.Tensor, buf[:na])
		y := floatsOf(&b.Tensor, buf[na:na+nb])
		r := buf[na+nb:]
		sa, sb := bcastStrides(a.Tensor.Shape, shape), bcastStrides(b.Tensor.Shape, shape)
		binLoop(r, x, y, shape, &sa, &sb, math.Pow)
		storeFloats(&out[0].Tensor, r)
		return nil
	}, nil
}

// newMod builds Mod: with fmod=0 the result takes the divisor's sign
// (Python's %, integers only), with fmod=1 the dividend's (C's fmod).
func newMod(n *Node) (Kernel, error) {
	fm := n.Attrs.Int("fmod", 0)
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	fi := func(a, b int64) int64 {
		if b == 0 {
			return 0
		}
		r := a % b
		if fm == 0 && r != 0 && (r < 0) != (b < 0) {
			r += b
		}
		return r
	}
	fu := func(a, b uint64) uint64 {
		if b == 0 {
			return 0
		}
		return a % b
	}
	ff := func(a, b float64) float64 {
		r := math.Mod(a, b)
		if fm == 0 && r != 0 && (r < 0) != (b < 0) {
			r += b
		}
		return r
	}
	return func(tmp *Scratch, in, out []*Value) error {
		a, b := in[0], in[1]
		if a.Kind != KindTensor || b.Kind != KindTensor {
			return badInput("want tensors, got %v and %v", a, b)
		}
		return mathArith(tmp, out[0], &a.Tensor, &b.Tensor, scalarFuncs[int64]{i: fi}, fu, ff)
	}, nil
}

func newIsNaN(n *Node) (Kernel, error) {
	return newFloatTest(func(x float64) bool { return x != x }), nil
}

func newIsInf(n *Node) (Kernel, error) {
	pos := n.Attrs.Int("detect_positive", 1) != 0
	neg := n.Attrs.Int("detect_negative", 1) != 0
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return newFloatTest(func(x float64) bool { return (pos && math.IsInf(x, 1)) || (neg && math.IsInf(x, -1)) }), nil
}

// newFloatTest builds a kernel mapping a float tensor to BOOL through f.
func newFloatTest(f func(float64) bool) Kernel {
	return func(tmp *Scratch, in, out []*Value) error {
		x := in[0]
		if err := checkType("input", x, floatTypes...); err != nil {
			return err
		}
		if err := out[0].Resize(tensor.Bool, x.Tensor.Shape); err != nil {
			return err
		}
		o := out[0].Bools()
		switch d := x.Tensor.Data.(type) {
		case []float32:
			for i, v := range d {
				o[i] = f(float64(v))
			}
		case []float64:
			for i, v := range d {
				o[i] = f(v)
			}
		case []uint16:
			for i, v := range d {
				o[i] = f(float64(tensor.Float16ToFloat32(v)))
			}
		}
		return nil
	}
}

func newNot(n *Node) (Kernel, error) {
	return func(tmp *Scratch, in, out []*Value) error {
		x := in[0]
		if err := checkType("Not", x, tensor.Bool); err != nil {
			return err
		}
		if err := out[0].Resize(tensor.Bool, x.Tensor.Shape); err != nil {
			return err
		}
		o := out[0].Bools()
		for i, v := range x.Bools() {
			o[i] = !v
		}
		return nil
	}, nil
}

func newBitwiseNot(n *Node) (Kernel, error) {
	return func(tmp *Scratch, in, out []*Value) error {
		if in[0].Kind == KindTensor && isFloat(in[0].Tensor.DType) {
			return badInput("BitwiseNot of %v", in[0])
		}
		return mathUnary(out[0], in[0], mathUnaryFuncs{
			i: func(x int64) int64 { return ^x },
			u: func(x uint64) uint64 { return ^x },
		})
	}, nil
}

// newBitShift builds BitShift over unsigned integers; shifts past the
// width give 0.
func newBitShift(n *Node) (Kernel, error) {
	dir := n.Attrs.String("direction", "")
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	var fu func(a, b uint64) uint64
	switch dir {
	case "LEFT":
		fu = func(a, b uint64) uint64 { return a << b }
	case "RIGHT":
		fu = func(a, b uint64) uint64 { return a >> b }
	default:
		return nil, attrError("BitShift direction %q", dir)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		a, b := in[0], in[1]
		if err := checkType("BitShift", a, tensor.Uint8, tensor.Uint16, tensor.Uint32, tensor.Uint64); err != nil {
			return err
		}
		if b.Kind != KindTensor {
			return badInput("want tensors, got %v", b)
		}
		return mathArith(tmp, out[0], &a.Tensor, &b.Tensor, scalarFuncs[int64]{}, fu, nil)
	}, nil
}

// newCastLike builds CastLike: Cast to the element type of input 1.
func newCastLike(n *Node) (Kernel, error) {
	if n.Attrs.Int("saturate", 1) != 1 {
		return nil, unsupported("CastLike saturate=0")
	}
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x, err := tensorValue("CastLike", in[0])
		if err != nil {
			return err
		}
		like, err := tensorValue("CastLike target", in[1])
		if err != nil {
			return err
		}
		if err := out[0].Resize(like.DType, x.Shape); err != nil {
			return err
		}
		return castInto(out[0], in[0])
	}, nil
}
