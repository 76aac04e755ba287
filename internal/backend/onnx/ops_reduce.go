package onnx

import (
	"math"
)

// reduceOps are the reductions over axes: ReduceSum, ReduceMean,
// ReduceMax, ReduceMin, ReduceProd, ReduceL1, ReduceL2, ReduceLogSum,
// ReduceLogSumExp and ReduceSumSquare. The axes are an attribute up to
// opset 17 (ReduceSum: 12) and an optional input since; keepdims keeps
// reduced dimensions as 1, and noop_with_empty_axes makes an absent axes
// input mean "no reduction" instead of "every axis". Every element type
// is accumulated in float64.
func reduceOps() []Op {
	var ops []Op
	for _, r := range []struct {
		typ       string
		inputAxes int64 // first opset with the axes input
	}{
		{"ReduceSum", 13}, {"ReduceMean", 18}, {"ReduceMax", 18}, {"ReduceMin", 18}, {"ReduceProd", 18},
		{"ReduceL1", 18}, {"ReduceL2", 18}, {"ReduceLogSum", 18}, {"ReduceLogSumExp", 18}, {"ReduceSumSquare", 18},
	} {
		ops = append(ops,
			Op{Domain: DomainONNX, Type: r.typ, Since: 1, Until: r.inputAxes - 1, New: newReduce(r.typ, false)},
			Op{Domain: DomainONNX, Type: r.typ, Since: r.inputAxes, New: newReduce(r.typ, true)},
		)
	}
	return ops
}

// reducer is one reduction: the accumulator's start, how it takes an
// element, and how it becomes the result given the element count.
type reducer struct {
	init  float64
	add   func(acc, x float64) float64
	final func(acc float64, count int) float64
}

func reducerOf(typ string) reducer {
	sum := func(acc, x float64) float64 { return acc + x }
	id := func(acc float64, _ int) float64 { return acc }
	switch typ {
	case "ReduceMean":
		return reducer{0, sum, func(acc float64, n int) float64 { return acc / float64(n) }}
	case "ReduceMax":
		return reducer{math.Inf(-1), fmax, id}
	case "ReduceMin":
		return reducer{math.Inf(1), fmin, id}
	case "ReduceProd":
		return reducer{1, func(acc, x float64) float64 { return acc * x }, id}
	case "ReduceL1":
		return reducer{0, func(acc, x float64) float64 { return acc + math.Abs(x) }, id}
	case "ReduceL2":
		return reducer{0, func(acc, x float64) float64 { return acc + x*x }, func(acc float64, _ int) float64 { return math.Sqrt(acc) }}
	case "ReduceLogSum":
		return reducer{0, sum, func(acc float64, _ int) float64 { return math.Log(acc) }}
	case "ReduceSumSquare":
		return reducer{0, func(acc, x float64) float64 { return acc + x*x }, id}
	}
	return reducer{0, sum, id} // ReduceSum; ReduceLogSumExp is special-cased
}

func newReduce(typ string, axesInput bool) func(n *Node) (Kernel, error) {
	return func(n *Node) (Kernel, error) {
		attrAxes := n.Attrs.Ints("axes")
		keep := n.Attrs.Int("keepdims", 1) != 0
		noop := n.Attrs.Int("noop_with_empty_axes", 0) != 0
		if err := n.Attrs.Err(); err != nil {
			return nil, err
		}
		red := reducerOf(typ)
		types := numTypes
		if typ == "ReduceMax" || typ == "ReduceMin" {
			types = anyTypes[:12] // BOOL too, since opset 20
		}
		return func(tmp *Scratch, in, out []*Value) error {
			x, err := tensorValue(typ, in[0])
			if err != nil {
				return err
			}
			if err := checkType(typ, in[0], types...); err != nil {
				return err
			}
			r := len(x.Shape)
			if r > MaxRank {
				return badInput("%s of rank %d", typ, r)
			}
			axes := attrAxes
			if axesInput {
				axes = nil
				if v := Arg(in, 1); v.Kind != KindNone {
					if axes, err = intsOf(v, tmp.Int64s(MaxRank)[:0:MaxRank]); err != nil {
						return err
					}
				}
			}
			if len(axes) == 0 && noop {
				return copyValue(out[0], in[0])
			}
			var reduced [MaxRank]bool
			for _, a := range axes {
				ax, err := normAxis(a, r)
				if err != nil {
					return err
				}
				reduced[ax] = true
			}
			if len(axes) == 0 {
				for i := range r {
					reduced[i] = true
				}
			}
			// Output shape, and the strides through which each input
			// element lands on its output element.
			full := tmp.Shape(r)
			for i, d := range x.Shape {
				full[i] = d
				if reduced[i] {
					full[i] = 1
				}
			}
			ost := rowStrides(full)
			for i := range r {
				if reduced[i] {
					ost[i] = 0
				}
			}
			nIn, nOut := numel(x.Shape), numel(full)
			count := nIn / max(nOut, 1)
			if nOut == 0 {
				count = 0
			}
			buf := tmp.Float64s(nIn + 2*nOut)
			xs := floatsOf(x, buf[:nIn])
			acc, aux := buf[nIn:nIn+nOut], buf[nIn+nOut:]
			last := 0
			if r > 0 {
				last = ost[r-1]
			}
			if typ == "ReduceLogSumExp" {
				fill(aux, math.Inf(-1))
				walk3(x.Shape, &ost, nil, nil, func(o, a, _, _, n int) {
					for j := range n {
						aux[a+j*last] = max(aux[a+j*last], xs[o+j])
					}
				})
				fill(acc, 0)
				walk3(x.Shape, &ost, nil, nil, func(o, a, _, _, n int) {
					for j := range n {
						if m := aux[a+j*last]; !math.IsInf(m, 0) {
							acc[a+j*last] += math.Exp(xs[o+j] - m)
						}
					}
				})
				for i := range acc {
					if math.IsInf(aux[i], 0) {
						acc[i] = aux[i]
					} else {
						acc[i] = math.Log(acc[i]) + aux[i]
					}
				}
			} else {
				fill(acc, red.init)
				walk3(x.Shape, &ost, nil, nil, func(o, a, _, _, n int) {
					for j := range n {
						acc[a+j*last] = red.add(acc[a+j*last], xs[o+j])
					}
				})
				for i := range acc {
					acc[i] = red.final(acc[i], count)
				}
			}
			shape := full
			if !keep {
				k := 0
				for i := range r {
					if !reduced[i] {
						full[k] = full[i]
						k++
					}
				}
				shape = full[:k]
			}
			if err := out[0].Resize(x.DType, shape); err != nil {
				return err
			}
			storeFloats(&out[0].Tensor, acc)
			return nil
		}, nil
	}
}

func fill(d []float64, v float64) {
	for i := range d {
		d[i] = v
	}
}
