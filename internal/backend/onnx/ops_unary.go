package onnx

import (
	"math"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// unaryOps are the elementwise activations and functions of one input.
func unaryOps() []Op {
	var ops []Op
	for _, u := range []struct {
		typ   string
		since int64
	}{
		{"Sigmoid", 6}, {"Tanh", 6}, {"Exp", 6}, {"Log", 6}, {"Sqrt", 6}, {"Abs", 6}, {"Neg", 6},
	} {
		ops = append(ops, Op{Domain: DomainONNX, Type: u.typ, Since: u.since, New: newUnary(u.typ)})
	}
	return ops
}

// unaryFunc returns the float64 function of a unary op type.
func unaryFunc(typ string) func(float64) float64 {
	switch typ {
	case "Relu":
		return func(x float64) float64 {
			if x > 0 {
				return x
			}
			if x != x {
				return x
			}
			return 0
		}
	case "Sigmoid":
		return func(x float64) float64 {
			if x >= 0 {
				return 1 / (1 + math.Exp(-x))
			}
			e := math.Exp(x)
			return e / (1 + e)
		}
	case "Tanh":
		return math.Tanh
	case "Exp":
		return math.Exp
	case "Log":
		return math.Log
	case "Sqrt":
		return math.Sqrt
	case "Abs":
		return math.Abs
	case "Neg":
		return func(x float64) float64 { return -x }
	}
	return nil
}

// newUnary builds the kernel of an elementwise op of one input. Relu, Abs
// and Neg also take signed integers.
func newUnary(typ string) func(n *Node) (Kernel, error) {
	f := unaryFunc(typ)
	types := []tensor.DType{tensor.FP32, tensor.FP64, tensor.FP16}
	intToo := typ == "Relu" || typ == "Abs" || typ == "Neg"
	if intToo {
		types = append(types, tensor.Int8, tensor.Int16, tensor.Int32, tensor.Int64)
	}
	return func(n *Node) (Kernel, error) {
		return func(tmp *Scratch, in, out []*Value) error {
			x := in[0]
			if err := checkType(typ, x, types...); err != nil {
				return err
			}
			if err := out[0].Resize(x.Tensor.DType, x.Tensor.Shape); err != nil {
				return err
			}
			switch d := x.Tensor.Data.(type) {
			case []float32:
				o := out[0].Float32s()
				if typ == "Relu" {
					for i, v := range d {
						o[i] = max(v, 0)
						if v != v {
							o[i] = v
						}
					}
					return nil
				}
				for i, v := range d {
					o[i] = float32(f(float64(v)))
				}
			case []float64:
				o := out[0].Float64s()
				for i, v := range d {
					o[i] = f(v)
				}
			case []uint16:
				o := out[0].Tensor.Data.([]uint16)
				for i, v := range d {
					o[i] = tensor.Float32ToFloat16(float32(f(float64(tensor.Float16ToFloat32(v)))))
				}
			case []int8:
				unaryInt(typ, out[0].Tensor.Data.([]int8), d)
			case []int16:
				unaryInt(typ, out[0].Tensor.Data.([]int16), d)
			case []int32:
				unaryInt(typ, out[0].Int32s(), d)
			case []int64:
				unaryInt(typ, out[0].Int64s(), d)
			}
			return nil
		}, nil
	}
}

func unaryInt[T ~int8 | ~int16 | ~int32 | ~int64](typ string, o, x []T) {
	for i, v := range x {
		switch typ {
		case "Relu":
			o[i] = max(v, 0)
		case "Abs":
			if v < 0 {
				v = -v
			}
			o[i] = v
		case "Neg":
			o[i] = -v
		}
	}
}
