package onnx

import (
	"fmt"
	"math"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// DomainTraining is the experimental operator set of optimizers,
// ai.onnx.preview.training.
const DomainTraining = "ai.onnx.preview.training"

// trainingOps are the optimizer steps of ai.onnx.preview.training 1:
// Adagrad, Momentum and Adam. Each takes a learning rate R and an update
// count T (scalars), then groups of n tensors (parameters X, gradients G
// and the optimizer's accumulators), and returns the updated parameters
// and accumulators, computed in float64. Gradient (automatic
// differentiation) is not implemented.
func trainingOps() []Op {
	return []Op{
		{Domain: DomainTraining, Type: "Adagrad", Since: 1, New: newAdagrad},
		{Domain: DomainTraining, Type: "Momentum", Since: 1, New: newMomentum},
		{Domain: DomainTraining, Type: "Adam", Since: 1, New: newAdam},
	}
}

// optimizerStep is one optimizer's update of element i: x, g and acc are
// the parameter, gradient and accumulators; it returns the new parameter
// and writes the new accumulators into acc.
type optimizerStep func(r float64, t int64, x, g float64, acc []float64) float64

// newOptimizer builds a kernel for an optimizer with nAcc accumulators per
// parameter: inputs R, T, X1..Xn, G1..Gn, then nAcc groups of n; outputs
// X1'..Xn' then the nAcc groups of new accumulators.
func newOptimizer(n *Node, name string, nAcc int, step optimizerStep) (Kernel, error) {
	groups := 2 + nAcc
	if n.NumInputs < 2+groups || (n.NumInputs-2)%groups != 0 || n.NumOutputs != (n.NumInputs-2)/groups*(1+nAcc) {
		return nil, fmt.Errorf("%w: %s has %d inputs and %d outputs", ErrInvalidModel, name, n.NumInputs, n.NumOutputs)
	}
	np := (n.NumInputs - 2) / groups
	return func(tmp *Scratch, in, out []*Value) error {
		if err := checkType(name+" R", in[0], tensor.FP32, tensor.FP64); err != nil {
			return err
		}
		if err := checkType(name+" T", in[1], tensor.Int64); err != nil {
			return err
		}
		if in[0].Len() != 1 || in[1].Len() != 1 {
			return badInput("%s: R and T must be scalars, got %v and %v", name, in[0], in[1])
		}
		var r float64
		if in[0].Tensor.DType == tensor.FP32 {
			r = float64(in[0].Float32s()[0])
		} else {
			r = in[0].Float64s()[0]
		}
		t := in[1].Int64s()[0]
		acc := tmp.Float64s(nAcc)
		for p := range np {
			x := in[2+p]
			if err := checkType(name+" X", x, tensor.FP32, tensor.FP64); err != nil {
				return err
			}
			for gi := 1; gi < groups; gi++ {
				o := in[2+gi*np+p]
				if err := checkType(name+" input", o, x.Tensor.DType); err != nil {
					return err
				}
				if !equalShape(o.Tensor.Shape, x.Tensor.Shape) {
					return badInput("%s: parameter %d has shape %v, a companion %v", name, p, x.Tensor.Shape, o.Tensor.Shape)
				}
			}
			for oi := 0; oi <= nAcc; oi++ {
				if err := out[oi*np+p].Resize(x.Tensor.DType, x.Tensor.Shape); err != nil {
					return err
				}
			}
			for i := range x.Len() {
				xv := float64At(x.Tensor.Data, i)
				gv := float64At(in[2+np+p].Tensor.Data, i)
				for a := range nAcc {
					acc[a] = float64At(in[2+(2+a)*np+p].Tensor.Data, i)
				}
				setFloat(out[p], i, step(r, t, xv, gv, acc))
				for a := range nAcc {
					setFloat(out[(1+a)*np+p], i, acc[a])
				}
			}
		}
		return nil
	}, nil
}

// newAdagrad: r = R / (1 + T*decay_factor); g' = norm_coefficient*x + g;
// h' = h + g'^2; x' = x - r*g' / (sqrt(h') + epsilon).
func newAdagrad(n *Node) (Kernel, error) {
	decay := float64(n.Attrs.Float("decay_factor", 0))
	eps := float64(n.Attrs.Float("epsilon", 0))
	norm := float64(n.Attrs.Float("norm_coefficient", 0))
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return newOptimizer(n, "Adagrad", 1, func(r float64, t int64, x, g float64, acc []float64) float64 {
		r /= 1 + float64(t)*decay
		g += norm * x
		acc[0] += g * g
		return x - r*g/(math.Sqrt(acc[0])+eps)
	})
}

// newMomentum: g' = norm_coefficient*x + g; v' = alpha*v + beta*g' (beta
// is 1 at T = 0); standard: x' = x - R*v'; nesterov: x' = x - R*(g' +
// alpha*v').
func newMomentum(n *Node) (Kernel, error) {
	for _, a := range []string{"alpha", "beta", "mode", "norm_coefficient"} {
		if !n.Attrs.Has(a) {
			return nil, fmt.Errorf("%w: Momentum needs %s", ErrAttr, a)
		}
	}
	alpha := float64(n.Attrs.Float("alpha", 0))
	beta := float64(n.Attrs.Float("beta", 0))
	mode := n.Attrs.String("mode", "")
	norm := float64(n.Attrs.Float("norm_coefficient", 0))
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if mode != "standard" && mode != "nesterov" {
		return nil, fmt.Errorf("%w: Momentum mode %q, want standard or nesterov", ErrAttr, mode)
	}
	nesterov := mode == "nesterov"
	return newOptimizer(n, "Momentum", 1, func(r float64, t int64, x, g float64, acc []float64) float64 {
		g += norm * x
		b := beta
		if t == 0 {
			b = 1
		}
		acc[0] = alpha*acc[0] + b*g
		if nesterov {
			return x - r*(g+alpha*acc[0])
		}
		return x - r*acc[0]
	})
}

// newAdam: g' = norm_coefficient*x + g; v' = alpha*v + (1-alpha)*g';
// h' = beta*h + (1-beta)*g'^2; at T > 0 the rate is R*sqrt(1-beta^T) /
// (1-alpha^T); x' = (1 - norm_coefficient_post) * (x - rate*v' /
// (sqrt(h') + epsilon)).
func newAdam(n *Node) (Kernel, error) {
	alpha := float64(n.Attrs.Float("alpha", 0.9))
	beta := float64(n.Attrs.Float("beta", 0.999))
	eps := float64(n.Attrs.Float("epsilon", 1e-6))
	norm := float64(n.Attrs.Float("norm_coefficient", 0))
	post := float64(n.Attrs.Float("norm_coefficient_post", 0))
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return newOptimizer(n, "Adam", 2, func(r float64, t int64, x, g float64, acc []float64) float64 {
		g += norm * x
		acc[0] = alpha*acc[0] + (1-alpha)*g
		acc[1] = beta*acc[1] + (1-beta)*g*g
		if t > 0 {
			r *= math.Sqrt(1-math.Pow(beta, float64(t))) / (1 - math.Pow(alpha, float64(t)))
		}
		return (1 - post) * (x - r*acc[0]/(math.Sqrt(acc[1])+eps))
	})
}
