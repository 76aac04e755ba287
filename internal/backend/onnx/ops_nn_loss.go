package onnx

import (
	"math"
)

// lossOps are NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss,
// with class weights, ignore_index and the none, sum and mean
// reductions, computed in float64.
func lossOps() []Op {
	return []Op{
		{Domain: DomainONNX, Type: "NegativeLogLikelihoodLoss", Since: 12, New: newLoss(false)},
		{Domain: DomainONNX, Type: "SoftmaxCrossEntropyLoss", Since: 12, New: newLoss(true)},
	}
}

// newLoss builds NegativeLogLikelihoodLoss (softmax false: the input is
// already log-probabilities) and SoftmaxCrossEntropyLoss (softmax true:
// the scores go through log-softmax over axis 1 first, which is the
// optional second output).
func newLoss(softmax bool) func(n *Node) (Kernel, error) {
	return func(n *Node) (Kernel, error) {
		red := n.Attrs.String("reduction", "mean")
		ignore, hasIgnore := n.Attrs.Int("ignore_index", 0), n.Attrs.Has("ignore_index")
		if err := n.Attrs.Err(); err != nil {
			return nil, err
		}
		if red != "none" && red != "sum" && red != "mean" {
			return nil, attrError("%s reduction %q", n.OpType, red)
		}
		return func(tmp *Scratch, in, out []*Value) error {
			if err := checkType(n.OpType, in[0], floatTypes...); err != nil {
				return err
			}
			x := &in[0].Tensor
			if len(x.Shape) < 2 {
				return badInput("%s of %v", n.OpType, x.Shape)
			}
			nb, c := int(x.Shape[0]), int(x.Shape[1])
			inner := numel(x.Shape[2:])
			nx := numel(x.Shape)
			nt := nb * inner
			target, err := intsOf(in[1], tmp.Int64s(nt)[:0])
			if err != nil {
				return err
			}
			if len(target) != nt {
				return badInput("%s target of %d for %d", n.OpType, len(target), nt)
			}
			w := Arg(in, 2)
			nw := 0
			if w.Kind != KindNone {
				if err := checkType(n.OpType+" weight", w, floatTypes...); err != nil {
					return err
				}
				if nw = w.Len(); nw != c {
					return badInput("%s weight of %d for %d classes", n.OpType, nw, c)
				}
			}
			buf := tmp.Float64s(2*nx + nt + nw)
			lp, xs := buf[:nx], buf[nx:2*nx]
			loss, wts := buf[2*nx:2*nx+nt], buf[2*nx+nt:]
			floatsOf(x, xs)
			if nw > 0 {
				floatsOf(&w.Tensor, wts)
			}
			if softmax {
				for b := range nb {
					for i := range inner {
						m := math.Inf(-1)
						for k := range c {
							m = max(m, xs[(b*c+k)*inner+i])
						}
						s := 0.0
						for k := range c {
							s += math.Exp(xs[(b*c+k)*inner+i] - m)
						}
						ls := math.Log(s) + m
						for k := range c {
							j := (b*c+k)*inner + i
							lp[j] = xs[j] - ls
						}
					}
				}
			} else {
				copy(lp, xs)
			}
			sumW, sumL := 0.0, 0.0
			for b := range nb {
				for i := range inner {
					t := target[b*inner+i]
					at := b*inner + i
					if hasIgnore && t == ignore {
						loss[at] = 0
						continue
					}
					if t < 0 || int(t) >= c {
						return badInput("%s target %d for %d classes", n.OpType, t, c)
					}
					wt := 1.0
					if nw > 0 {
						wt = wts[t]
					}
					loss[at] = -lp[(b*c+int(t))*inner+i] * wt
					sumW += wt
					sumL += loss[at]
				}
			}
			shape := tmp.Shape(len(x.Shape) - 1)
			if red == "none" {
				shape[0] = x.Shape[0]
				copy(shape[1:], x.Shape[2:])
			} else {
				shape = shape[:0]
				if red == "mean" {
					sumL /= sumW
				}
				loss = loss[:1]
				loss[0] = sumL
			}
			if err := out[0].Resize(x.DType, shape); err != nil {
				return err
			}
			storeFloats(&out[0].Tensor, loss)
			if softmax && len(out) > 1 && out[1] != nil {
				if err := out[1].Resize(x.DType, x.Shape); err != nil {
					return err
				}
				storeFloats(&out[1].Tensor, lp)
			}
			return nil
		}, nil
	}
}
