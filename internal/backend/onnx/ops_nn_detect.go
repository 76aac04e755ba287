package onnx

import (
	"math"
	"slices"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// detectOps are the object-detection operators NonMaxSuppression and
// RoiAlign.
func detectOps() []Op {
	return []Op{
		{Domain: DomainONNX, Type: "NonMaxSuppression", Since: 10, New: newNMS},
		{Domain: DomainONNX, Type: "RoiAlign", Since: 10, New: newRoiAlign},
	}
}

// newNMS builds NonMaxSuppression: per batch and class, boxes scoring
// above score_threshold are taken greedily by decreasing score (ties by
// index), dropping those whose IoU with a taken box exceeds
// iou_threshold, up to max_output_boxes_per_class.
func newNMS(n *Node) (Kernel, error) {
	center := n.Attrs.Int("center_point_box", 0) != 0
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		if err := checkType("NonMaxSuppression boxes", in[0], tensor.FP32); err != nil {
			return err
		}
		if err := checkType("NonMaxSuppression scores", in[1], tensor.FP32); err != nil {
			return err
		}
		boxes, scores := in[0].Float32s(), in[1].Float32s()
		bs, ss := in[0].Tensor.Shape, in[1].Tensor.Shape
		if len(bs) != 3 || bs[2] != 4 || len(ss) != 3 || ss[0] != bs[0] || ss[2] != bs[1] {
			return badInput("NonMaxSuppression boxes %v, scores %v", bs, ss)
		}
		maxOut := int64(0)
		if v := Arg(in, 2); v.Kind == KindTensor && v.Len() > 0 {
			var err error
			if maxOut, err = scalarInt("max_output_boxes_per_class", v); err != nil {
				return err
			}
		}
		iouTh, scoreTh := 0.0, math.Inf(-1)
		var one [1]float64
		if v := Arg(in, 3); v.Kind == KindTensor && v.Len() > 0 {
			iouTh = floatsOf(&v.Tensor, one[:])[0]
		}
		if v := Arg(in, 4); v.Kind == KindTensor && v.Len() > 0 {
			scoreTh = floatsOf(&v.Tensor, one[:])[0]
		}
		nb, nc, nbox := int(bs[0]), int(ss[1]), int(bs[1])
		order := make([]int, 0, nbox)
		var sel []int64
		var picked []int
		corners := func(b, i int) (y1, x1, y2, x2 float64) {
			p := boxes[(b*nbox+i)*4:]
			if center {
				xc, yc, w, h := float64(p[0]), float64(p[1]), float64(p[2]), float64(p[3])
				return yc - h/2, xc - w/2, yc + h/2, xc + w/2
			}
			y1, x1, y2, x2 = float64(p[0]), float64(p[1]), float64(p[2]), float64(p[3])
			return min(y1, y2), min(x1, x2), max(y1, y2), max(x1, x2)
		}
		iou := func(b, i, j int) float64 {
			ay1, ax1, ay2, ax2 := corners(b, i)
			by1, bx1, by2, bx2 := corners(b, j)
			ih := min(ay2, by2) - max(ay1, by1)
			iw := min(ax2, bx2) - max(ax1, bx1)
			if ih <= 0 || iw <= 0 {
				return 0
			}
			inter := ih * iw
			union := (ay2-ay1)*(ax2-ax1) + (by2-by1)*(bx2-bx1) - inter
			if union <= 0 {
				return 0
			}
			return inter / union
		}
		for b := range nb {
			for c := range nc {
				sc := scores[(b*nc+c)*nbox : (b*nc+c+1)*nbox]
				order = order[:0]
				for i, s := range sc {
					if float64(s) > scoreTh {
						order = append(order, i)
					}
				}
				slices.SortStableFunc(order, func(p, q int) int {
					switch {
					case sc[p] > sc[q]:
						return -1
					case sc[p] < sc[q]:
						return 1
					}
					return 0
				})
				picked = picked[:0]
				for _, i := range order {
					if int64(len(picked)) >= maxOut {
						break
					}
					keep := true
					for _, j := range picked {
						if iou(b, i, j) > iouTh {
							keep = false
							break
						}
					}
					if keep {
						picked = append(picked, i)
						sel = append(sel, int64(b), int64(c), int64(i))
					}
				}
			}
		}
		shape := tmp.Shape(2)
		shape[0], shape[1] = int64(len(sel)/3), 3
		if err := out[0].Resize(tensor.Int64, shape); err != nil {
			return err
		}
		copy(out[0].Int64s(), sel)
		return nil
	}, nil
}

// newRoiAlign builds RoiAlign: each region of interest is divided into
// output_height x output_width bins, each the average (or maximum) of
// bilinear samples on a sampling grid.
func newRoiAlign(n *Node) (Kernel, error) {
	mode := n.Attrs.String("mode", "avg")
	oh := int(n.Attrs.Int("output_height", 1))
	ow := int(n.Attrs.Int("output_width", 1))
	ratio := int(n.Attrs.Int("sampling_ratio", 0))
	scale := float64(n.Attrs.Float("spatial_scale", 1))
	ctm := "output_half_pixel"
	if n.Version >= 16 {
		ctm = n.Attrs.String("coordinate_transformation_mode", "half_pixel")
	}
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if mode != "avg" && mode != "max" {
		return nil, attrError("RoiAlign mode %q", mode)
	}
	half := ctm == "half_pixel"
	return func(tmp *Scratch, in, out []*Value) error {
		if err := checkType("RoiAlign", in[0], floatTypes...); err != nil {
			return err
		}
		x, rois := &in[0].Tensor, &in[1].Tensor
		if len(x.Shape) != 4 || len(rois.Shape) != 2 || rois.Shape[1] != 4 {
			return badInput("RoiAlign of %v with rois %v", x.Shape, rois.Shape)
		}
		nr := int(rois.Shape[0])
		bi, err := intsOf(in[2], tmp.Int64s(nr)[:0])
		if err != nil {
			return err
		}
		c, H, W := int(x.Shape[1]), int(x.Shape[2]), int(x.Shape[3])
		nx := numel(x.Shape)
		buf := tmp.Float64s(nx + nr*4 + nr*c*oh*ow)
		xs, rs, ys := floatsOf(x, buf[:nx]), floatsOf(rois, buf[nx:nx+nr*4]), buf[nx+nr*4:]
		off := 0.0
		if half {
			off = 0.5
		}
		for r := range nr {
			b := int(bi[r])
			if b < 0 || b >= int(x.Shape[0]) {
				return badInput("RoiAlign batch index %d", b)
			}
			x1, y1 := rs[r*4]*scale-off, rs[r*4+1]*scale-off
			x2, y2 := rs[r*4+2]*scale-off, rs[r*4+3]*scale-off
			rw, rh := x2-x1, y2-y1
			if !half {
				rw, rh = max(rw, 1), max(rh, 1)
			}
			bh, bw := rh/float64(oh), rw/float64(ow)
			gh, gw := ratio, ratio
			if ratio <= 0 {
				gh, gw = int(math.Ceil(rh/float64(oh))), int(math.Ceil(rw/float64(ow)))
			}
			count := float64(max(gh*gw, 1))
			for ch := range c {
				img := xs[(b*c+ch)*H*W : (b*c+ch+1)*H*W]
				for py := range oh {
					for px := range ow {
						acc := 0.0
						if mode == "max" {
							acc = math.Inf(-1)
						}
						for iy := range gh {
							yy := y1 + float64(py)*bh + (float64(iy)+0.5)*bh/float64(gh)
							for ix := range gw {
								xx := x1 + float64(px)*bw + (float64(ix)+0.5)*bw/float64(gw)
								v1, v2, v3, v4, w1, w2, w3, w4, ok := bilinearTaps(img, H, W, yy, xx)
								if !ok {
									if mode == "max" {
										acc = max(acc, 0)
									}
									continue
								}
								if mode == "avg" {
									acc += w1*v1 + w2*v2 + w3*v3 + w4*v4
								} else {
									acc = max(acc, w1*v1, w2*v2, w3*v3, w4*v4)
								}
							}
						}
						if mode == "avg" {
							acc /= count
						}
						ys[((r*c+ch)*oh+py)*ow+px] = acc
					}
				}
			}
		}
		shape := tmp.Shape(4)
		shape[0], shape[1], shape[2], shape[3] = int64(nr), int64(c), int64(oh), int64(ow)
		if err := out[0].Resize(x.DType, shape); err != nil {
			return err
		}
		storeFloats(&out[0].Tensor, ys[:nr*c*oh*ow])
		return nil
	}, nil
}

// bilinearTaps returns the four neighbours of (y, x) in img and their
// bilinear weights, as RoiAlign samples them (false outside the image).
func bilinearTaps(img []float64, H, W int, y, x float64) (v1, v2, v3, v4, w1, w2, w3, w4 float64, ok bool) {
	if y < -1 || y > float64(H) || x < -1 || x > float64(W) {
		return
	}
	y, x = max(y, 0), max(x, 0)
	yl, xl := int(y), int(x)
	yh, xh := yl+1, xl+1
	if yl >= H-1 {
		yl, yh, y = H-1, H-1, float64(H-1)
	}
	if xl >= W-1 {
		xl, xh, x = W-1, W-1, float64(W-1)
	}
	ly, lx := y-float64(yl), x-float64(xl)
	hy, hx := 1-ly, 1-lx
	return img[yl*W+xl], img[yl*W+xh], img[yh*W+xl], img[yh*W+xh], hy * hx, hy * lx, ly * hx, ly * lx, true
}
