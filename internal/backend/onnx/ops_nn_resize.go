package onnx

import (
	"math"
)

// resizeOps are Resize (opsets 10 to 19: nearest, linear and cubic
// interpolation, every coordinate transformation mode, antialiasing,
// axes and keep_aspect_ratio_policy) and the older Upsample.
func resizeOps() []Op {
	return []Op{
		{Domain: DomainONNX, Type: "Resize", Since: 10, New: newResize},
		{Domain: DomainONNX, Type: "Upsample", Since: 7, Until: 9, New: newResize},
	}
}

// resizeAttrs are Resize's attributes.
type resizeAttrs struct {
	mode, coord, nearest, policy string
	cubicA, extrapolation        float64
	excludeOutside, antialias    bool
	axes                         []int64
	upsample                     bool
	attrScales                   []float32
}

func newResize(n *Node) (Kernel, error) {
	a := resizeAttrs{
		mode:           n.Attrs.String("mode", "nearest"),
		coord:          n.Attrs.String("coordinate_transformation_mode", "half_pixel"),
		nearest:        n.Attrs.String("nearest_mode", "round_prefer_floor"),
		policy:         n.Attrs.String("keep_aspect_ratio_policy", "stretch"),
		cubicA:         float64(n.Attrs.Float("cubic_coeff_a", -0.75)),
		extrapolation:  float64(n.Attrs.Float("extrapolation_value", 0)),
		excludeOutside: n.Attrs.Int("exclude_outside", 0) != 0,
		antialias:      n.Attrs.Int("antialias", 0) != 0,
		axes:           n.Attrs.Ints("axes"),
		upsample:       n.OpType == "Upsample",
		attrScales:     n.Attrs.Floats("scales"),
	}
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if a.mode == "bilinear" || a.mode == "trilinear" {
		a.mode = "linear"
	}
	if n.Version < 11 || a.upsample {
		// Resize-10 and Upsample: x_original = x_resized / scale, nearest
		// rounds down.
		a.coord, a.nearest = "asymmetric", "floor"
	}
	switch a.mode {
	case "nearest", "linear", "cubic":
	default:
		return nil, attrError("Resize mode %q", a.mode)
	}
	switch a.coord {
	case "half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize":
	default:
		return nil, attrError("Resize coordinate_transformation_mode %q", a.coord)
	}
	switch a.nearest {
	case "round_prefer_floor", "round_prefer_ceil", "floor", "ceil":
	default:
		return nil, attrError("Resize nearest_mode %q", a.nearest)
	}
	switch a.policy {
	case "stretch", "not_larger", "not_smaller":
	default:
		return nil, attrError("Resize keep_aspect_ratio_policy %q", a.policy)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		return resize(tmp, &a, n.Version, in, out[0])
	}, nil
}

func resize(tmp *Scratch, a *resizeAttrs, version int64, in []*Value, out *Value) error {
	if err := checkType("Resize", in[0], numTypes...); err != nil {
		return err
	}
	x := &in[0].Tensor
	r := len(x.Shape)
	if r > MaxRank {
		return badInput("Resize of rank %d", r)
	}
	// Which inputs hold roi, scales and sizes.
	roiV, scalesV, sizesV := &absent, &absent, &absent
	switch {
	case a.upsample && version < 9:
	case a.upsample || version < 11:
		scalesV = Arg(in, 1)
	default:
		roiV, scalesV, sizesV = Arg(in, 1), Arg(in, 2), Arg(in, 3)
	}
	var axes [MaxRank]int
	na := r
	if a.axes != nil {
		na = len(a.axes)
		for i, ax := range a.axes {
			v, err := normAxis(ax, r)
			if err != nil {
				return err
			}
			axes[i] = v
		}
	} else {
		for i := range r {
			axes[i] = i
		}
	}
	var scale [MaxRank]float64
	var outSize [MaxRank]int
	var roiStart, roiEnd [MaxRank]float64
	for i := range r {
		scale[i], outSize[i], roiStart[i], roiEnd[i] = 1, int(x.Shape[i]), 0, 1
	}
	fb := tmp.Float64s(4 * MaxRank)
	if roiV.Kind == KindTensor && roiV.Len() > 0 {
		if roiV.Len() != 2*na {
			return badInput("Resize roi of %d for %d axes", roiV.Len(), na)
		}
		roi := floatsOf(&roiV.Tensor, fb[:2*na])
		for i := range na {
			roiStart[axes[i]], roiEnd[axes[i]] = roi[i], roi[na+i]
		}
	}
	switch {
	case sizesV.Kind == KindTensor && sizesV.Len() > 0:
		sizes, err := intsOf(sizesV, tmp.Int64s(MaxRank)[:0])
		if err != nil {
			return err
		}
		if len(sizes) != na {
			return badInput("Resize sizes %v for %d axes", sizes, na)
		}
		if a.policy == "stretch" {
			for i := range na {
				ax := axes[i]
				outSize[ax] = int(sizes[i])
				scale[ax] = float64(sizes[i]) / float64(x.Shape[ax])
			}
			break
		}
		s := math.Inf(1)
		if a.policy == "not_smaller" {
			s = math.Inf(-1)
		}
		for i := range na {
			v := float64(sizes[i]) / float64(x.Shape[axes[i]])
			if a.policy == "not_larger" {
				s = min(s, v)
			} else {
				s = max(s, v)
			}
		}
		for i := range na {
			ax := axes[i]
			scale[ax] = s
			outSize[ax] = int(math.RoundToEven(s * float64(x.Shape[ax])))
		}
	case scalesV.Kind == KindTensor && scalesV.Len() > 0 || a.attrScales != nil:
		var sc []float64
		if a.attrScales != nil && scalesV.Kind != KindTensor {
			sc = fb[2*MaxRank : 2*MaxRank+len(a.attrScales)]
			for i, v := range a.attrScales {
				sc[i] = float64(v)
			}
		} else {
			sc = floatsOf(&scalesV.Tensor, fb[2*MaxRank:2*MaxRank+scalesV.Len()])
		}
		if len(sc) != na {
			return badInput("Resize scales %v for %d axes", sc, na)
		}
		for i := range na {
			ax := axes[i]
			if sc[i] <= 0 {
				return badInput("Resize scale %v", sc[i])
			}
			scale[ax] = sc[i]
			outSize[ax] = int(sc[i] * float64(x.Shape[ax]))
		}
	default:
		return badInput("Resize needs scales or sizes")
	}
	// Interpolate one axis at a time, ping-ponging between two buffers.
	nx := numel(x.Shape)
	maxN := nx
	cur := tmp.Shape(r)
	copy(cur, x.Shape)
	for ax := range r {
		if outSize[ax] == int(cur[ax]) && scale[ax] == 1 && a.coord != "tf_crop_and_resize" {
			continue
		}
		cur[ax] = int64(outSize[ax])
		maxN = max(maxN, numel(cur))
	}
	copy(cur, x.Shape)
	buf := tmp.Float64s(4*MaxRank + 2*maxN)[4*MaxRank:]
	bufs := [2][]float64{buf[:maxN], buf[maxN:]}
	src, which := floatsOf(x, bufs[0][:nx]), 0
	for ax := range r {
		if outSize[ax] == int(cur[ax]) && scale[ax] == 1 && a.coord != "tf_crop_and_resize" {
			continue
		}
		outer, inner := numel(cur[:ax]), numel(cur[ax+1:])
		dst := bufs[1-which]
		interpAxis(dst, src, outer, int(cur[ax]), outSize[ax], inner, scale[ax], roiStart[ax], roiEnd[ax], a)
		cur[ax] = int64(outSize[ax])
		which = 1 - which
		src = dst[:numel(cur)]
	}
	if err := out.Resize(x.DType, cur); err != nil {
		return err
	}
	if !isFloat(x.DType) {
		for i, v := range src {
			src[i] = math.RoundToEven(v)
		}
	}
	storeFloats(&out.Tensor, src)
	return nil
}

// interpAxis resizes the middle dimension of src, seen as
// [outer][nIn][inner], into dst as [outer][nOut][inner].
func interpAxis(dst, src []float64, outer, nIn, nOut, inner int, scale, roiStart, roiEnd float64, a *resizeAttrs) {
	var taps [64]int
	var wts [64]float64
	for o := range nOut {
		xo := originalCoord(float64(o), scale, nIn, nOut, roiStart, roiEnd, a.coord)
		extrapolate := a.coord == "tf_crop_and_resize" && (xo < 0 || xo > float64(nIn-1))
		k := 0
		if !extrapolate {
			k = tapsFor(taps[:], wts[:], xo, scale, nIn, a)
		}
		for b := range outer {
			for i := range inner {
				at := (b*nOut+o)*inner + i
				if extrapolate {
					dst[at] = a.extrapolation
					continue
				}
				s := 0.0
				for t := range k {
					s += wts[t] * src[(b*nIn+taps[t])*inner+i]
				}
				dst[at] = s
			}
		}
	}
}

// originalCoord maps an output coordinate to the input's.
func originalCoord(x, scale float64, nIn, nOut int, roiStart, roiEnd float64, mode string) float64 {
	switch mode {
	case "half_pixel":
		return (x+0.5)/scale - 0.5
	case "half_pixel_symmetric":
		adj := float64(nOut) / (scale * float64(nIn))
		center := float64(nIn) / 2
		return center*(1-adj) + (x+0.5)/scale - 0.5
	case "pytorch_half_pixel":
		if nOut > 1 {
			return (x+0.5)/scale - 0.5
		}
		return 0
	case "align_corners":
		// The resized length is scale*nIn, not rounded, as in ONNX's
		// reference (it differs from nOut when scales are given).
		l := scale * float64(nIn)
		if l == 1 {
			return 0
		}
		return x * float64(nIn-1) / (l - 1)
	case "tf_half_pixel_for_nn":
		return (x + 0.5) / scale
	case "tf_crop_and_resize":
		if nOut > 1 {
			return roiStart*float64(nIn-1) + x*(roiEnd-roiStart)*float64(nIn-1)/float64(nOut-1)
		}
		return 0.5 * (roiStart + roiEnd) * float64(nIn-1)
	}
	return x / scale // asymmetric
}

// tapsFor fills taps and wts with the input indices and weights giving
// the value at input coordinate x, and returns how many there are.
func tapsFor(taps []int, wts []float64, x, scale float64, nIn int, a *resizeAttrs) int {
	clampIdx := func(i int) int { return min(max(i, 0), nIn-1) }
	if a.mode == "nearest" {
		var i int
		switch a.nearest {
		case "floor":
			i = int(math.Floor(x))
		case "ceil":
			i = int(math.Ceil(x))
		case "round_prefer_ceil":
			i = int(math.Floor(x + 0.5))
		default: // round_prefer_floor
			i = int(math.Ceil(x - 0.5))
		}
		taps[0], wts[0] = clampIdx(i), 1
		return 1
	}
	// The left neighbour and the ratio in (0, 1], preferring the left
	// pixel on exact hits, as ONNX's reference does.
	left := math.Floor(x)
	ratio := x - left
	if ratio == 0 {
		left--
		ratio = 1
	}
	s := 1.0
	if a.antialias && scale < 1 {
		s = scale
	}
	var lo, hi int
	if a.mode == "linear" {
		lo = int(math.Floor(-1/s) + 1)
		hi = 2 - lo
	} else {
		lo = int(math.Floor(-2/s) + 1)
		hi = 2 - lo
	}
	if hi-lo > len(taps) {
		lo, hi = -len(taps)/2+1, len(taps)/2+1
	}
	k := 0
	sum := 0.0
	for i := lo; i < hi; i++ {
		d := math.Abs((float64(i) - ratio) * s)
		var w float64
		if a.mode == "linear" {
			w = max(0, 1-d)
		} else {
			w = cubicWeight(d, a.cubicA)
		}
		idx := int(left) + i
		if a.excludeOutside && (idx < 0 || idx >= nIn) {
			w = 0
		}
		taps[k], wts[k] = clampIdx(idx), w
		sum += w
		k++
	}
	if (a.antialias && scale < 1) || a.excludeOutside {
		if sum != 0 {
			for i := range k {
				wts[i] /= sum
			}
		}
	}
	return k
}

// cubicWeight is the cubic convolution kernel with coefficient A at
// distance d.
func cubicWeight(d, A float64) float64 {
	switch {
	case d < 1:
		return ((A+2)*d-(A+3))*d*d + 1
	case d < 2:
		return ((A*d-5*A)*d+8*A)*d - 4*A
	}
	return 0
}
