package onnx

import (
	"math"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// poolOps are the window reductions MaxPool (with its Indices output),
// AveragePool, LpPool and their global forms, over any spatial rank.
func poolOps() []Op {
	return []Op{
		{Domain: DomainONNX, Type: "MaxPool", Since: 1, New: newPool("max")},
		{Domain: DomainONNX, Type: "AveragePool", Since: 1, New: newPool("avg")},
		{Domain: DomainONNX, Type: "LpPool", Since: 1, New: newPool("lp")},
		{Domain: DomainONNX, Type: "GlobalMaxPool", Since: 1, New: newGlobalPool("max")},
		{Domain: DomainONNX, Type: "GlobalAveragePool", Since: 1, New: newGlobalPool("avg")},
		{Domain: DomainONNX, Type: "GlobalLpPool", Since: 2, New: newGlobalPool("lp")},
	}
}

func newPool(kind string) func(n *Node) (Kernel, error) {
	return func(n *Node) (Kernel, error) {
		w := readWindowAttrs(n)
		includePad := n.Attrs.Int("count_include_pad", 0) != 0
		colMajor := n.Attrs.Int("storage_order", 0) != 0
		p := float64(n.Attrs.Int("p", 2))
		if n.Version < 2 && kind == "lp" {
			p = float64(n.Attrs.Float("p", 2))
		}
		if err := n.Attrs.Err(); err != nil {
			return nil, err
		}
		if err := w.check(n); err != nil {
			return nil, err
		}
		if w.kernel == nil {
			return nil, attrError("%s without kernel_shape", n.OpType)
		}
		return func(tmp *Scratch, in, out []*Value) error {
			if err := checkType(n.OpType, in[0], tensor.FP32, tensor.FP64, tensor.FP16, tensor.Int8, tensor.Uint8); err != nil {
				return err
			}
			x := &in[0].Tensor
			r := len(x.Shape)
			if r < 3 || r-2 > MaxRank/2 {
				return badInput("%s of %v", n.OpType, x.Shape)
			}
			g, err := w.resolve(x.Shape[2:], w.kernel)
			if err != nil {
				return err
			}
			shape := tmp.Shape(r)
			shape[0], shape[1] = x.Shape[0], x.Shape[1]
			for i := range g.rank {
				shape[2+i] = int64(g.out[i])
			}
			planes := int(x.Shape[0] * x.Shape[1])
			ni, no := spatialSize(&g.in, g.rank), spatialSize(&g.out, g.rank)
			buf := tmp.Float64s(planes * (ni + no))
			xs := floatsOf(x, buf[:planes*ni])
			ys := buf[planes*ni:]
			var idx []int64
			wantIdx := kind == "max" && len(out) > 1 && out[1] != nil
			if wantIdx {
				if err := out[1].Resize(tensor.Int64, shape); err != nil {
					return err
				}
				idx = out[1].Int64s()
			}
			nk := spatialSize(&g.k, g.rank)
			for pl := range planes {
				img := xs[pl*ni : (pl+1)*ni]
				var opos [MaxRank]int
				for o := range no {
					acc, cnt, best := 0.0, 0, -1
					if kind == "max" {
						acc = math.Inf(-1)
					}
					padCnt := 0
					var kpos [MaxRank]int
					for range nk {
						at, inside, inPad := 0, true, true
						for i := range g.rank {
							q := opos[i]*g.s[i] - g.pb[i] + kpos[i]*g.d[i]
							if q < 0 || q >= g.in[i] {
								inside = false
								if q < -g.pb[i] || q >= g.in[i]+g.pe[i] {
									inPad = false
								}
							}
							at = at*g.in[i] + q
						}
						if inPad {
							padCnt++
						}
						if inside {
							v := img[at]
							switch kind {
							case "max":
								if v > acc || best < 0 {
									acc, best = v, at
								}
							case "avg":
								acc += v
							case "lp":
								acc += math.Pow(math.Abs(v), p)
							}
							cnt++
						}
						odometer(&kpos, &g.k, g.rank)
					}
					switch kind {
					case "avg":
						if includePad {
							cnt = padCnt
						}
						acc /= float64(max(cnt, 1))
					case "lp":
						acc = math.Pow(acc, 1/p)
					}
					ys[pl*no+o] = acc
					if wantIdx {
						idx[pl*no+o] = maxIndex(pl, best, ni, &g, colMajor)
					}
					odometer(&opos, &g.out, g.rank)
				}
			}
			if err := out[0].Resize(x.DType, shape); err != nil {
				return err
			}
			storeFloats(&out[0].Tensor, ys[:planes*no])
			return nil
		}, nil
	}
}

// maxIndex returns MaxPool's index of the element at flat spatial offset
// at of plane pl: row-major over the whole input, or with the spatial
// dimensions in column-major order when colMajor (storage_order 1).
func maxIndex(pl, at, ni int, g *geom, colMajor bool) int64 {
	if !colMajor {
		return int64(pl*ni + at)
	}
	var pos [MaxRank]int
	rem := at
	for i := g.rank - 1; i >= 0; i-- {
		pos[i] = rem % g.in[i]
		rem /= g.in[i]
	}
	cm := 0
	for i := g.rank - 1; i >= 0; i-- {
		cm = cm*g.in[i] + pos[i]
	}
	return int64(pl*ni + cm)
}

func newGlobalPool(kind string) func(n *Node) (Kernel, error) {
	return func(n *Node) (Kernel, error) {
		p := float64(n.Attrs.Int("p", 2))
		if err := n.Attrs.Err(); err != nil {
			return nil, err
		}
		return func(tmp *Scratch, in, out []*Value) error {
			if err := checkType(n.OpType, in[0], floatTypes...); err != nil {
				return err
			}
			x := &in[0].Tensor
			r := len(x.Shape)
			if r < 2 {
				return badInput("%s of %v", n.OpType, x.Shape)
			}
			shape := tmp.Shape(r)
			for i := range shape {
				shape[i] = 1
			}
			shape[0], shape[1] = x.Shape[0], x.Shape[1]
			planes := int(x.Shape[0] * x.Shape[1])
			ni := numel(x.Shape[2:])
			buf := tmp.Float64s(planes*ni + planes)
			xs := floatsOf(x, buf[:planes*ni])
			ys := buf[planes*ni:]
			for pl := range planes {
				img := xs[pl*ni : (pl+1)*ni]
				acc := 0.0
				switch kind {
				case "max":
					acc = math.Inf(-1)
					for _, v := range img {
						acc = max(acc, v)
					}
				case "avg":
					for _, v := range img {
						acc += v
					}
					acc /= float64(ni)
				case "lp":
					for _, v := range img {
						acc += math.Pow(math.Abs(v), p)
					}
					acc = math.Pow(acc, 1/p)
				}
				ys[pl] = acc
			}
			if err := out[0].Resize(x.DType, shape); err != nil {
				return err
			}
			storeFloats(&out[0].Tensor, ys)
			return nil
		}, nil
	}
}
