package onnx

import (
	"fmt"
	"math"
)

// deformConvOps is DeformConv (opset 19+), for 2-D inputs.
func deformConvOps() []Op {
	return []Op{
		{Domain: DomainONNX, Type: "DeformConv", Since: 19, New: newDeformConv},
	}
}

// newDeformConv is a 2-D convolution whose sampling points move by learned
// offsets: for output (oh, ow) and kernel tap (i, j), input channel c of
// offset group g is read by bilinear interpolation (zero outside the image)
// at (oh*sh - pad_top + i*dh + dy, ow*sw - pad_left + j*dw + dx), where
// (dy, dx) are offset[n, g*2*kH*kW + 2*(i*kW+j) + {0, 1}, oh, ow], and
// scaled by mask[n, g*kH*kW + i*kW + j, oh, ow] (1 without a mask).
// Inputs: X [N, C, H, W], W [M, C/group, kH, kW], offset, B [M]
// (optional), mask (optional). Computed in float64.
func newDeformConv(n *Node) (Kernel, error) {
	dil := n.Attrs.Ints("dilations")
	group := n.Attrs.Int("group", 1)
	kshape := n.Attrs.Ints("kernel_shape")
	offGroup := n.Attrs.Int("offset_group", 1)
	pads := n.Attrs.Ints("pads")
	strides := n.Attrs.Ints("strides")
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	for _, a := range []struct {
		name string
		v    []int64
		want int
	}{{"dilations", dil, 2}, {"kernel_shape", kshape, 2}, {"pads", pads, 4}, {"strides", strides, 2}} {
		if a.v != nil && len(a.v) != a.want {
			return nil, fmt.Errorf("%w: DeformConv %s %v: shoal supports 2-D DeformConv (%d values)", ErrUnsupported, a.name, a.v, a.want)
		}
		for _, x := range a.v {
			if x < 0 || (x == 0 && a.name != "pads") || x > 1<<20 {
				return nil, fmt.Errorf("%w: DeformConv %s %v", ErrAttr, a.name, a.v)
			}
		}
	}
	if group < 1 || offGroup < 1 {
		return nil, fmt.Errorf("%w: DeformConv group %d, offset_group %d", ErrAttr, group, offGroup)
	}
	get := func(v []int64, i int, def int64) int {
		if v == nil {
			return int(def)
		}
		return int(v[i])
	}
	dh, dw := get(dil, 0, 1), get(dil, 1, 1)
	sh, sw := get(strides, 0, 1), get(strides, 1, 1)
	pt, pl, pb, pr := get(pads, 0, 0), get(pads, 1, 0), get(pads, 2, 0), get(pads, 3, 0)
	G, OG := int(group), int(offGroup)
	return func(tmp *Scratch, in, out []*Value) error {
		x, w, off, bias, mask := in[0], Arg(in, 1), Arg(in, 2), Arg(in, 3), Arg(in, 4)
		if x.Kind != KindTensor || len(x.Tensor.Shape) != 4 || w.Kind != KindTensor || len(w.Tensor.Shape) != 4 {
			return badInput("DeformConv: X %v and W %v, want 4-D (2-D images)", x, w)
		}
		N, C, H, W := int(x.Tensor.Shape[0]), int(x.Tensor.Shape[1]), int(x.Tensor.Shape[2]), int(x.Tensor.Shape[3])
		M, Cg, kH, kW := int(w.Tensor.Shape[0]), int(w.Tensor.Shape[1]), int(w.Tensor.Shape[2]), int(w.Tensor.Shape[3])
		if kshape != nil && (int(kshape[0]) != kH || int(kshape[1]) != kW) {
			return badInput("DeformConv: kernel_shape %v, W %v", kshape, w)
		}
		if C%G != 0 || M%G != 0 || Cg != C/G || C%OG != 0 || kH == 0 || kW == 0 {
			return badInput("DeformConv: X %v, W %v with group %d and offset_group %d", x, w, G, OG)
		}
		oH := (H+pt+pb-(dh*(kH-1)+1))/sh + 1
		oW := (W+pl+pr-(dw*(kW-1)+1))/sw + 1
		if oH <= 0 || oW <= 0 {
			return badInput("DeformConv: X %v too small for the kernel %dx%d", x, kH, kW)
		}
		K := kH * kW
		wantOff := []int64{int64(N), int64(OG * 2 * K), int64(oH), int64(oW)}
		if off.Kind != KindTensor || !equalShape(off.Tensor.Shape, wantOff) {
			return badInput("DeformConv: offset %v, want %v", off, wantOff)
		}
		if bias.Kind != KindNone && (len(bias.Tensor.Shape) != 1 || int(bias.Tensor.Shape[0]) != M) {
			return badInput("DeformConv: B %v, want [%d]", bias, M)
		}
		wantMask := []int64{int64(N), int64(OG * K), int64(oH), int64(oW)}
		if mask.Kind != KindNone && !equalShape(mask.Tensor.Shape, wantMask) {
			return badInput("DeformConv: mask %v, want %v", mask, wantMask)
		}
		P := oH * oW
		nCols := Cg * K * P
		vals, rest, err := floatInputs(tmp, "DeformConv", in[:min(len(in), 5)], N*M*P+nCols)
		if err != nil {
			return err
		}
		xs, ws, offs, bs, ms := vals[0], vals[1], vals[2], vals[3], vals[4]
		ys, cols := rest[:N*M*P], rest[N*M*P:]
		perOG := C / OG
		for b := range N {
			for g := range G {
				// cols[(c*K + k)*P + p]: the sampled input of channel c of
				// this group at tap k for output position p.
				for c := range Cg {
					ch := g*Cg + c
					og := ch / perOG
					img := xs[(b*C+ch)*H*W : (b*C+ch+1)*H*W]
					for i := range kH {
						for j := range kW {
							k := i*kW + j
							oy := offs[((b*OG+og)*2*K+2*k)*P : ((b*OG+og)*2*K+2*k+1)*P]
							ox := offs[((b*OG+og)*2*K+2*k+1)*P : ((b*OG+og)*2*K+2*k+2)*P]
							col := cols[(c*K+k)*P : (c*K+k+1)*P]
							for p := range P {
								oh, ow := p/oW, p%oW
								y := float64(oh*sh-pt+i*dh) + oy[p]
								xx := float64(ow*sw-pl+j*dw) + ox[p]
								s := bilinear(img, H, W, y, xx)
								if ms != nil {
									s *= ms[((b*OG+og)*K+k)*P+p]
								}
								col[p] = s
							}
						}
					}
				}
				for m := g * (M / G); m < (g+1)*(M/G); m++ {
					y := ys[(b*M+m)*P : (b*M+m+1)*P]
					bv := 0.0
					if bs != nil {
						bv = bs[m]
					}
					for p := range y {
						y[p] = bv
					}
					wm := ws[m*Cg*K : (m+1)*Cg*K]
					for r, wv := range wm {
						col := cols[r*P : (r+1)*P]
						for p := range y {
							y[p] += wv * col[p]
						}
					}
				}
			}
		}
		os := tmp.Shape(4)
		os[0], os[1], os[2], os[3] = int64(N), int64(M), int64(oH), int64(oW)
		if err := out[0].Resize(x.Tensor.DType, os); err != nil {
			return err
		}
		storeFloats(&out[0].Tensor, ys)
		return nil
	}, nil
}

// bilinear samples img (H x W) at (y, x), with zeros outside the image.
func bilinear(img []float64, H, W int, y, x float64) float64 {
	if y <= -1 || y >= float64(H) || x <= -1 || x >= float64(W) || math.IsNaN(y) || math.IsNaN(x) {
		return 0
	}
	y0, x0 := int(math.Floor(y)), int(math.Floor(x))
	fy, fx := y-float64(y0), x-float64(x0)
	at := func(r, c int) float64 {
		if r < 0 || r >= H || c < 0 || c >= W {
			return 0
		}
		return img[r*W+c]
	}
	return (1-fy)*(1-fx)*at(y0, x0) + (1-fy)*fx*at(y0, x0+1) + fy*(1-fx)*at(y0+1, x0) + fy*fx*at(y0+1, x0+1)
}
