package onnx

import (
	"math"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// activationOps are the element-wise activations with attributes (Elu,
// Selu, LeakyRelu, HardSigmoid, ...), PRelu, Dropout in inference and
// Hardmax.
func activationOps() []Op {
	ops := []Op{
		{Domain: DomainONNX, Type: "PRelu", Since: 7, New: newPRelu},
		{Domain: DomainONNX, Type: "Dropout", Since: 1, New: newDropout},
		{Domain: DomainONNX, Type: "Hardmax", Since: 1, Until: 12, New: newHardmax},
		{Domain: DomainONNX, Type: "Hardmax", Since: 13, New: newHardmax},
	}
	for _, a := range []struct {
		typ   string
		since int64
		f     func(n *Node) func(float64) float64
	}{
		{"Elu", 6, func(n *Node) func(float64) float64 {
			alpha := float64(n.Attrs.Float("alpha", 1))
			return func(x float64) float64 {
				if x < 0 {
					return alpha * (math.Exp(x) - 1)
				}
				return x
			}
		}},
		{"Selu", 6, func(n *Node) func(float64) float64 {
			alpha := float64(n.Attrs.Float("alpha", 1.67326319217681884765625))
			gamma := float64(n.Attrs.Float("gamma", 1.05070102214813232421875))
			return func(x float64) float64 {
				if x <= 0 {
					return gamma * (alpha*math.Exp(x) - alpha)
				}
				return gamma * x
			}
		}},
		{"Celu", 12, func(n *Node) func(float64) float64 {
			alpha := float64(n.Attrs.Float("alpha", 1))
			return func(x float64) float64 {
				return max(0, x) + min(0, alpha*(math.Exp(x/alpha)-1))
			}
		}},
		{"LeakyRelu", 6, func(n *Node) func(float64) float64 {
			alpha := float64(n.Attrs.Float("alpha", 0.01))
			return func(x float64) float64 {
				if x < 0 {
					return alpha * x
				}
				return x
			}
		}},
		{"ThresholdedRelu", 10, func(n *Node) func(float64) float64 {
			alpha := float64(n.Attrs.Float("alpha", 1))
			return func(x float64) float64 {
				if x > alpha {
					return x
				}
				return 0
			}
		}},
		{"HardSigmoid", 6, func(n *Node) func(float64) float64 {
			alpha := float64(n.Attrs.Float("alpha", 0.2))
			beta := float64(n.Attrs.Float("beta", 0.5))
			return func(x float64) float64 { return max(0, min(1, alpha*x+beta)) }
		}},
		{"HardSwish", 14, func(n *Node) func(float64) float64 {
			return func(x float64) float64 { return x * max(0, min(1, x/6+0.5)) }
		}},
		{"Softplus", 1, func(n *Node) func(float64) float64 {
			return func(x float64) float64 {
				if x > 30 {
					return x
				}
				return math.Log1p(math.Exp(x))
			}
		}},
		{"Softsign", 1, func(n *Node) func(float64) float64 {
			return func(x float64) float64 { return x / (1 + math.Abs(x)) }
		}},
		{"Mish", 18, func(n *Node) func(float64) float64 {
			return func(x float64) float64 {
				sp := x
				if x <= 30 {
					sp = math.Log1p(math.Exp(x))
				}
				return x * math.Tanh(sp)
			}
		}},
		{"Swish", 24, func(n *Node) func(float64) float64 {
			alpha := float64(n.Attrs.Float("alpha", 1))
			return func(x float64) float64 { return x / (1 + math.Exp(-alpha*x)) }
		}},
		{"Gelu", 20, func(n *Node) func(float64) float64 {
			if n.Attrs.String("approximate", "none") == "tanh" {
				return func(x float64) float64 {
					return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
				}
			}
			return func(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }
		}},
	} {
		ops = append(ops, Op{Domain: DomainONNX, Type: a.typ, Since: a.since, New: newActivation(a.f)})
	}
	return ops
}

func newActivation(mk func(n *Node) func(float64) float64) func(n *Node) (Kernel, error) {
	return func(n *Node) (Kernel, error) {
		f := mk(n)
		if err := n.Attrs.Err(); err != nil {
			return nil, err
		}
		op := mathUnaryFuncs{f: f}
		return func(tmp *Scratch, in, out []*Value) error {
			if err := checkType(n.OpType, in[0], floatTypes...); err != nil {
				return err
			}
			return mathUnary(out[0], in[0], op)
		}, nil
	}
}

func newPRelu(n *Node) (Kernel, error) {
	fi := scalarFuncs[int64]{i: func(x, s int64) int64 {
		if x < 0 {
			return x * s
		}
		return x
	}}
	fu := func(x, s uint64) uint64 { return x }
	ff := func(x, s float64) float64 {
		if x < 0 {
			return x * s
		}
		return x
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x, err := tensorValue("PRelu", in[0])
		if err != nil {
			return err
		}
		s, err := tensorValue("PRelu slope", in[1])
		if err != nil {
			return err
		}
		return mathArith(tmp, out[0], x, s, fi, fu, ff)
	}, nil
}

// newDropout builds Dropout for inference: the output is the input and
// the optional mask is all true. Training mode with a nonzero ratio draws
// random numbers, which shoal does not do.
func newDropout(n *Node) (Kernel, error) {
	ratio := n.Attrs.Float("ratio", 0.5)
	n.Attrs.Int("seed", 0)
	n.Attrs.Int("is_test", 0)
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	_ = ratio
	return func(tmp *Scratch, in, out []*Value) error {
		if v := Arg(in, 2); v.Kind == KindTensor && v.Len() == 1 && v.Tensor.DType == tensor.Bool && v.Bools()[0] {
			r := Arg(in, 1)
			if r.Kind != KindNone {
				buf := tmp.Float64s(1)
				if floatsOf(&r.Tensor, buf)[0] != 0 {
					return unsupported("Dropout in training mode")
				}
			} else {
				return unsupported("Dropout in training mode")
			}
		}
		if err := copyValue(out[0], in[0]); err != nil {
			return err
		}
		if len(out) > 1 && out[1] != nil {
			if err := out[1].Resize(tensor.Bool, in[0].Tensor.Shape); err != nil {
				return err
			}
			fillT(out[1].Bools(), true)
		}
		return nil
	}, nil
}

// newHardmax builds Hardmax: before opset 13 the input is seen as a 2-D
// matrix split at axis (default 1), since over one axis (default -1).
func newHardmax(n *Node) (Kernel, error) {
	def := int64(-1)
	if n.Version < 13 {
		def = 1
	}
	axis := n.Attrs.Int("axis", def)
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		if err := checkType("Hardmax", in[0], floatTypes...); err != nil {
			return err
		}
		x := &in[0].Tensor
		ax, err := normAxis(axis, len(x.Shape))
		if err != nil {
			return err
		}
		outer, d, inner := numel(x.Shape[:ax]), int(x.Shape[ax]), numel(x.Shape[ax+1:])
		if n.Version < 13 {
			d, inner = numel(x.Shape[ax:]), 1
		}
		nn := numel(x.Shape)
		xs := floatsOf(x, tmp.Float64s(2 * nn)[:nn])
		res := tmp.Float64s(2 * nn)[nn:]
		fill(res, 0)
		for o := range outer {
			for i := range inner {
				best := 0
				for k := 1; k < d; k++ {
					if xs[(o*d+k)*inner+i] > xs[(o*d+best)*inner+i] {
						best = k
					}
				}
				if d > 0 {
					res[(o*d+best)*inner+i] = 1
				}
			}
		}
		if err := out[0].Resize(x.DType, x.Shape); err != nil {
			return err
		}
		storeFloats(&out[0].Tensor, res)
		return nil
	}, nil
}
