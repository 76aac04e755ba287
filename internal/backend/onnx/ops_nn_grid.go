package onnx

import (
	"math"
)

// gridOps are GridSample (any spatial rank; nearest, linear and cubic;
// zeros, border and reflection padding) and AffineGrid.
func gridOps() []Op {
	return []Op{
		{Domain: DomainONNX, Type: "GridSample", Since: 16, New: newGridSample},
		{Domain: DomainONNX, Type: "AffineGrid", Since: 20, New: newAffineGrid},
	}
}

func newGridSample(n *Node) (Kernel, error) {
	mode := n.Attrs.String("mode", "linear")
	if n.Version < 20 && !n.Attrs.Has("mode") {
		mode = "bilinear"
	}
	pad := n.Attrs.String("padding_mode", "zeros")
	align := n.Attrs.Int("align_corners", 0) != 0
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	switch mode {
	case "bilinear":
		mode = "linear"
	case "bicubic":
		mode = "cubic"
	}
	if mode != "linear" && mode != "nearest" && mode != "cubic" {
		return nil, attrError("GridSample mode %q", mode)
	}
	if pad != "zeros" && pad != "border" && pad != "reflection" {
		return nil, attrError("GridSample padding_mode %q", pad)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		if err := checkType("GridSample", in[0], floatTypes...); err != nil {
			return err
		}
		if err := checkType("GridSample grid", in[1], floatTypes...); err != nil {
			return err
		}
		x, gr := &in[0].Tensor, &in[1].Tensor
		r := len(x.Shape)
		k := r - 2
		if k < 1 || k > 4 || len(gr.Shape) != r || int(gr.Shape[r-1]) != k || gr.Shape[0] != x.Shape[0] {
			return badInput("GridSample of %v with grid %v", x.Shape, gr.Shape)
		}
		nb, c := int(x.Shape[0]), int(x.Shape[1])
		var dims [MaxRank]int
		for i := range k {
			dims[i] = int(x.Shape[2+i])
		}
		ni := numel(x.Shape[2:])
		no := numel(gr.Shape[1 : r-1])
		nx, ng := numel(x.Shape), numel(gr.Shape)
		buf := tmp.Float64s(nx + ng + nb*c*no)
		xs, gs, ys := floatsOf(x, buf[:nx]), floatsOf(gr, buf[nx:nx+ng]), buf[nx+ng:]
		var lo, hi [MaxRank]float64
		for i := range k {
			lo[i], hi[i] = -0.5, float64(dims[i])-0.5
			if align {
				lo[i], hi[i] = 0, float64(dims[i]-1)
			}
		}
		ntap := 2
		switch mode {
		case "nearest":
			ntap = 1
		case "cubic":
			ntap = 4
		}
		combos := 1
		for range k {
			combos *= ntap
		}
		st := rowStrides(x.Shape[2:])
		for b := range nb {
			for o := range no {
				// The sample position, in X's dimension order.
				var pos [MaxRank]float64
				g := gs[(b*no+o)*k:]
				for i := range k {
					v := g[k-1-i]
					d := float64(dims[i])
					if align {
						pos[i] = (v + 1) / 2 * (d - 1)
					} else {
						pos[i] = ((v+1)*d - 1) / 2
					}
					if mode == "nearest" {
						pos[i] = math.RoundToEven(pos[i])
					}
					if pos[i] < lo[i] || pos[i] > hi[i] {
						switch pad {
						case "border":
							pos[i] = min(max(pos[i], 0), d-1)
						case "reflection":
							pos[i] = reflectCoord(pos[i], lo[i], hi[i])
						}
					}
				}
				// Taps and weights per dimension.
				var base [MaxRank]int
				var wts [MaxRank][4]float64
				for i := range k {
					switch mode {
					case "nearest":
						base[i] = int(pos[i])
						wts[i][0] = 1
					case "linear":
						f := math.Floor(pos[i])
						t := pos[i] - f
						base[i] = int(f)
						wts[i][0], wts[i][1] = 1-t, t
					default:
						f := math.Floor(pos[i])
						t := pos[i] - f
						base[i] = int(f) - 1
						for j := range 4 {
							wts[i][j] = cubicWeight(math.Abs(t-float64(j-1)), -0.75)
						}
					}
				}
				for ch := range c {
					img := xs[(b*c+ch)*ni : (b*c+ch+1)*ni]
					sum := 0.0
					for combo := range combos {
						w, at, zero := 1.0, 0, false
						rem := combo
						for i := k - 1; i >= 0; i-- {
							j := rem % ntap
							rem /= ntap
							w *= wts[i][j]
							idx := base[i] + j
							d := dims[i]
							if idx < 0 || idx >= d {
								switch pad {
								case "zeros":
									zero = true
								case "border":
									idx = min(max(idx, 0), d-1)
								default:
									idx = int(reflectCoord(float64(idx), lo[i], hi[i]))
									idx = min(max(idx, 0), d-1)
								}
							}
							at += idx * st[i]
						}
						if !zero && w != 0 {
							sum += w * img[at]
						}
					}
					ys[(b*c+ch)*no+o] = sum
				}
			}
		}
		shape := tmp.Shape(r)
		shape[0], shape[1] = int64(nb), int64(c)
		copy(shape[2:], gr.Shape[1:r-1])
		if err := out[0].Resize(x.DType, shape); err != nil {
			return err
		}
		storeFloats(&out[0].Tensor, ys[:nb*c*no])
		return nil
	}, nil
}

// reflectCoord reflects x by the nearer border until it lies in [lo, hi].
func reflectCoord(x, lo, hi float64) float64 {
	rng := hi - lo
	if rng <= 0 {
		return lo
	}
	switch {
	case x < lo:
		dx := lo - x
		k := math.Floor(dx / rng)
		r := dx - k*rng
		if int(k)%2 == 0 {
			return lo + r
		}
		return hi - r
	case x > hi:
		dx := x - hi
		k := math.Floor(dx / rng)
		r := dx - k*rng
		if int(k)%2 == 0 {
			return hi - r
		}
		return lo + r
	}
	return x
}

// newAffineGrid builds AffineGrid: for theta [N, 2, 3] (or [N, 3, 4])
// and size (N, C, H, W) (or (N, C, D, H, W)), the grid [N, H, W, 2] of
// theta applied to the normalized output coordinates (x first).
func newAffineGrid(n *Node) (Kernel, error) {
	align := n.Attrs.Int("align_corners", 0) != 0
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		if err := checkType("AffineGrid theta", in[0], floatTypes...); err != nil {
			return err
		}
		th := &in[0].Tensor
		size, err := intsOf(in[1], tmp.Int64s(MaxRank)[:0:MaxRank])
		if err != nil {
			return err
		}
		k := len(size) - 2
		if (k != 2 && k != 3) || len(th.Shape) != 3 || int(th.Shape[1]) != k || int(th.Shape[2]) != k+1 {
			return badInput("AffineGrid of theta %v and size %v", th.Shape, size)
		}
		nb := int(size[0])
		sp := size[2:]
		npts := numel(sp)
		nt := numel(th.Shape)
		buf := tmp.Float64s(nt + nb*npts*k)
		ts, gs := floatsOf(th, buf[:nt]), buf[nt:]
		// Normalized coordinate of index i along a dimension of size d.
		coord := func(i, d int) float64 {
			if d == 1 {
				return 0
			}
			if align {
				return -1 + 2*float64(i)/float64(d-1)
			}
			return (2*float64(i)+1)/float64(d) - 1
		}
		for b := range nb {
			t := ts[b*k*(k+1):]
			for p := range npts {
				// Spatial index, last dimension (x) fastest.
				var c [3]float64
				rem := p
				for i := k - 1; i >= 0; i-- {
					d := int(sp[i])
					c[k-1-i] = coord(rem%d, d) // c[0] = x, c[1] = y, c[2] = z
					rem /= d
				}
				for row := range k {
					v := t[row*(k+1)+k]
					for col := range k {
						v += t[row*(k+1)+col] * c[col]
					}
					gs[(b*npts+p)*k+row] = v
				}
			}
		}
		shape := tmp.Shape(k + 2)
		shape[0] = int64(nb)
		copy(shape[1:], sp)
		shape[k+1] = int64(k)
		if err := out[0].Resize(th.DType, shape); err != nil {
			return err
		}
		storeFloats(&out[0].Tensor, gs[:nb*npts*k])
		return nil
	}, nil
}
