package onnx

import (
	"math"
	"slices"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// extraOps are less common tensor operators: CenterCropPad, Col2Im,
// MaxUnpool, TensorScatter, Unique, Det and the window functions.
func extraOps() []Op {
	return []Op{
		{Domain: DomainONNX, Type: "CenterCropPad", Since: 18, New: newCenterCropPad},
		{Domain: DomainONNX, Type: "Col2Im", Since: 18, New: newCol2Im},
		{Domain: DomainONNX, Type: "MaxUnpool", Since: 9, New: newMaxUnpool},
		{Domain: DomainONNX, Type: "TensorScatter", Since: 24, New: newTensorScatter},
		{Domain: DomainONNX, Type: "Unique", Since: 11, New: newUnique},
		{Domain: DomainONNX, Type: "Det", Since: 11, New: newDet},
		{Domain: DomainONNX, Type: "HannWindow", Since: 17, New: newWindow("hann")},
		{Domain: DomainONNX, Type: "HammingWindow", Since: 17, New: newWindow("hamming")},
		{Domain: DomainONNX, Type: "BlackmanWindow", Since: 17, New: newWindow("blackman")},
	}
}

// newCenterCropPad builds CenterCropPad: each listed axis is cropped
// (centered, the extra element at the end) or zero-padded (centered, the
// extra element at the end) to the requested size.
func newCenterCropPad(n *Node) (Kernel, error) {
	axes := n.Attrs.Ints("axes")
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x, err := tensorValue("CenterCropPad", in[0])
		if err != nil {
			return err
		}
		r := len(x.Shape)
		if r > MaxRank {
			return badInput("CenterCropPad of rank %d", r)
		}
		want, err := intsOf(in[1], tmp.Int64s(MaxRank)[:0:MaxRank])
		if err != nil {
			return err
		}
		shape := tmp.Shape(r)
		copy(shape, x.Shape)
		// Per axis: source start (crop) and destination start (pad).
		var srcOff, dstOff [MaxRank]int
		na := r
		if axes != nil {
			na = len(axes)
		}
		if len(want) != na {
			return badInput("CenterCropPad shape %v for %d axes", want, na)
		}
		for i := range na {
			ax := i
			if axes != nil {
				if ax, err = normAxis(axes[i], r); err != nil {
					return err
				}
			}
			d, t := int(x.Shape[ax]), int(want[i])
			shape[ax] = int64(t)
			if t < d {
				srcOff[ax] = (d - t) / 2
			} else {
				dstOff[ax] = (t - d) / 2
			}
		}
		if err := out[0].Resize(x.DType, shape); err != nil {
			return err
		}
		o := out[0]
		o.Zero()
		// Copy the overlapping box, row by row of the last dimension.
		var box [MaxRank]int
		for i := range r {
			box[i] = min(int(x.Shape[i]), int(shape[i]))
		}
		if r == 0 {
			copyRange(o.Tensor.Data, 0, x.Data, 0, 1)
			return nil
		}
		rows := 1
		for i := range r - 1 {
			rows *= box[i]
		}
		if box[r-1] == 0 {
			return nil
		}
		xs, os := rowStrides(x.Shape), rowStrides(shape)
		var pos [MaxRank]int
		for range rows {
			s, d := 0, 0
			for i := range r {
				s += (pos[i] + srcOff[i]) * xs[i]
				d += (pos[i] + dstOff[i]) * os[i]
			}
			copyRange(o.Tensor.Data, d, x.Data, s, box[r-1])
			odometer(&pos, &box, r-1)
		}
		return nil
	}, nil
}

// newCol2Im builds Col2Im: the inverse of im2col, summing overlapping
// blocks.
func newCol2Im(n *Node) (Kernel, error) {
	w := readWindowAttrs(n)
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		if err := checkType("Col2Im", in[0], tensor.FP32); err != nil {
			return err
		}
		x := &in[0].Tensor
		img, err := intsOf(in[1], tmp.Int64s(2 * MaxRank)[:0:MaxRank])
		if err != nil {
			return err
		}
		blk, err := intsOf(in[2], tmp.Int64s(2 * MaxRank)[MaxRank:MaxRank:2*MaxRank])
		if err != nil {
			return err
		}
		sr := len(img)
		if len(x.Shape) != 3 || len(blk) != sr || sr > MaxRank/2 {
			return badInput("Col2Im of %v, image %v, block %v", x.Shape, img, blk)
		}
		// Forward geometry: image -> blocks.
		g, err := w.resolve(img, blk)
		if err != nil {
			return err
		}
		nk := spatialSize(&g.k, sr)
		nb := int(x.Shape[0])
		c := int(x.Shape[1]) / nk
		// col2im reads windows of size g.in and writes images of size
		// g.out: swap the roles.
		var h geom = g
		h.in, h.out = g.out, g.in
		nbl := spatialSize(&h.in, sr)
		if c*nk != int(x.Shape[1]) || nbl != int(x.Shape[2]) {
			return badInput("Col2Im of %v for %d blocks of %d", x.Shape, nbl, nk)
		}
		shape := tmp.Shape(2 + sr)
		shape[0], shape[1] = int64(nb), int64(c)
		copy(shape[2:], img)
		if err := out[0].Resize(tensor.FP32, shape); err != nil {
			return err
		}
		y := out[0].Float32s()
		clear(y)
		no := spatialSize(&h.out, sr)
		xs := x.Data.([]float32)
		for b := range nb {
			col2im(y[b*c*no:(b+1)*c*no], xs[b*c*nk*nbl:(b+1)*c*nk*nbl], c, &h)
		}
		return nil
	}, nil
}

// newMaxUnpool builds MaxUnpool: zeros, with each input value written
// at the flat position its index gives.
func newMaxUnpool(n *Node) (Kernel, error) {
	w := readWindowAttrs(n)
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if w.kernel == nil {
		return nil, attrError("MaxUnpool without kernel_shape")
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x, err := tensorValue("MaxUnpool", in[0])
		if err != nil {
			return err
		}
		r := len(x.Shape)
		if r < 3 || r-2 != len(w.kernel) {
			return badInput("MaxUnpool of %v", x.Shape)
		}
		idx, err := intsOf(in[1], tmp.Int64s(x.Len() + MaxRank)[:0:x.Len()])
		if err != nil {
			return err
		}
		// Indices address the default output shape; an explicit
		// output_shape places that shape's coordinates in a larger one.
		buf := tmp.Shape(2 * r)
		def, shape := buf[:r], buf[r:]
		def[0], def[1] = x.Shape[0], x.Shape[1]
		for i := range r - 2 {
			s, pb, pe := int64(1), int64(0), int64(0)
			if w.strides != nil {
				s = w.strides[i]
			}
			if w.pads != nil {
				pb, pe = w.pads[i], w.pads[r-2+i]
			}
			def[2+i] = (x.Shape[2+i]-1)*s + w.kernel[i] - pb - pe
		}
		copy(shape, def)
		if v := Arg(in, 2); v.Kind == KindTensor {
			s, err := intsOf(v, tmp.Int64s(x.Len() + MaxRank)[x.Len():x.Len()])
			if err != nil || len(s) != r {
				return badInput("MaxUnpool output_shape %v", v)
			}
			copy(shape, s)
		}
		if err := out[0].Resize(x.DType, shape); err != nil {
			return err
		}
		o := out[0]
		o.Zero()
		total := numel(def)
		ds, os := rowStrides(def), rowStrides(o.Tensor.Shape)
		for i, j := range idx {
			if j < 0 || int(j) >= total {
				return badInput("MaxUnpool index %d out of range", j)
			}
			at, rem := 0, int(j)
			for k := range r {
				c := rem / ds[k]
				rem %= ds[k]
				if c >= int(o.Tensor.Shape[k]) {
					return badInput("MaxUnpool output_shape %v smaller than %v", o.Tensor.Shape, def)
				}
				at += c * os[k]
			}
			copyRange(o.Tensor.Data, at, x.Data, i, 1)
		}
		return nil
	}, nil
}

// newTensorScatter builds TensorScatter: a copy of the cache with each
// batch's update written along axis from its write index (wrapping in
// circular mode).
func newTensorScatter(n *Node) (Kernel, error) {
	axis := n.Attrs.Int("axis", -2)
	mode := n.Attrs.String("mode", "linear")
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if mode != "linear" && mode != "circular" {
		return nil, attrError("TensorScatter mode %q", mode)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		past, err := tensorValue("TensorScatter", in[0])
		if err != nil {
			return err
		}
		upd, err := tensorValue("TensorScatter update", in[1])
		if err != nil {
			return err
		}
		r := len(past.Shape)
		ax, err := normAxis(axis, r)
		if err != nil || ax == 0 || len(upd.Shape) != r || upd.DType != past.DType {
			return badInput("TensorScatter of %v with %v", past.Shape, upd.Shape)
		}
		nb := int(past.Shape[0])
		var wi []int64
		if v := Arg(in, 2); v.Kind == KindTensor {
			if wi, err = intsOf(v, tmp.Int64s(nb)[:0]); err != nil {
				return err
			}
		}
		if err := copyValue(out[0], in[0]); err != nil {
			return err
		}
		mid := numel(past.Shape[1:ax])
		m, s := int(past.Shape[ax]), int(upd.Shape[ax])
		inner := numel(past.Shape[ax+1:])
		for b := range nb {
			start := 0
			if wi != nil {
				start = int(wi[b])
			}
			for o := range mid {
				for j := range s {
					at := start + j
					if mode == "circular" {
						at %= m
					}
					if at < 0 || at >= m {
						return badInput("TensorScatter write index %d out of range", at)
					}
					copyRange(out[0].Tensor.Data, ((b*mid+o)*m+at)*inner, upd.Data, ((b*mid+o)*s+j)*inner, inner)
				}
			}
		}
		return nil
	}, nil
}

// newUnique builds Unique over the flattened input, or over slices along
// axis: Y, the index of each one's first occurrence, the inverse indices
// and the counts; sorted (default) or in order of first occurrence.
func newUnique(n *Node) (Kernel, error) {
	axis, hasAxis := n.Attrs.Int("axis", 0), n.Attrs.Has("axis")
	sorted := n.Attrs.Int("sorted", 1) != 0
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		if err := checkType("Unique", in[0], numTypes...); err != nil {
			return err
		}
		x := &in[0].Tensor
		nx := numel(x.Shape)
		vals := floatsOf(x, make([]float64, nx))
		outer, d, inner := 1, nx, 1
		ax := 0
		if hasAxis {
			var err error
			if ax, err = normAxis(axis, len(x.Shape)); err != nil {
				return err
			}
			outer, d, inner = numel(x.Shape[:ax]), int(x.Shape[ax]), numel(x.Shape[ax+1:])
		}
		// slice k is the elements (o, k, i) for every o, i.
		key := func(k int) []float64 {
			s := make([]float64, 0, outer*inner)
			for o := range outer {
				s = append(s, vals[(o*d+k)*inner:(o*d+k+1)*inner]...)
			}
			return s
		}
		keys := make([][]float64, d)
		for k := range d {
			keys[k] = key(k)
		}
		var firsts []int
		inverse := make([]int64, d)
		for k := range d {
			found := -1
			for u, f := range firsts {
				if slices.Equal(keys[f], keys[k]) {
					found = u
					break
				}
			}
			if found < 0 {
				found = len(firsts)
				firsts = append(firsts, k)
			}
			inverse[k] = int64(found)
		}
		order := make([]int, len(firsts))
		for i := range order {
			order[i] = i
		}
		if sorted {
			slices.SortStableFunc(order, func(a, b int) int { return slices.Compare(keys[firsts[a]], keys[firsts[b]]) })
		}
		rank := make([]int64, len(firsts))
		for pos, u := range order {
			rank[u] = int64(pos)
		}
		nu := len(firsts)
		counts := make([]int64, nu)
		for k := range d {
			inverse[k] = rank[inverse[k]]
			counts[inverse[k]]++
		}
		idx := make([]int64, nu)
		for pos, u := range order {
			idx[pos] = int64(firsts[u])
		}
		var shape []int64
		var y []float64
		if hasAxis {
			shape = slices.Clone(x.Shape)
			shape[ax] = int64(nu)
			y = make([]float64, outer*nu*inner)
			for o := range outer {
				for pos, u := range order {
					copy(y[(o*nu+pos)*inner:(o*nu+pos+1)*inner], vals[(o*d+firsts[u])*inner:(o*d+firsts[u]+1)*inner])
				}
			}
		} else {
			shape = []int64{int64(nu)}
			y = make([]float64, nu)
			for pos, u := range order {
				y[pos] = vals[firsts[u]]
			}
		}
		if err := out[0].Resize(x.DType, shape); err != nil {
			return err
		}
		storeFloats(&out[0].Tensor, y)
		for i, data := range [][]int64{idx, inverse, counts} {
			o := Arg(out, 1+i)
			if o == &absent {
				continue
			}
			if err := o.Resize(tensor.Int64, []int64{int64(len(data))}); err != nil {
				return err
			}
			copy(o.Int64s(), data)
		}
		return nil
	}, nil
}

// newDet builds Det: the determinant of each trailing square matrix, by
// LU decomposition with partial pivoting in float64.
func newDet(n *Node) (Kernel, error) {
	return func(tmp *Scratch, in, out []*Value) error {
		if err := checkType("Det", in[0], floatTypes...); err != nil {
			return err
		}
		x := &in[0].Tensor
		r := len(x.Shape)
		if r < 2 || x.Shape[r-1] != x.Shape[r-2] {
			return badInput("Det of %v", x.Shape)
		}
		m := int(x.Shape[r-1])
		nm := numel(x.Shape[:r-2])
		nx := numel(x.Shape)
		buf := tmp.Float64s(nx + nm)
		a, dets := floatsOf(x, buf[:nx]), buf[nx:]
		for k := range nm {
			mat := a[k*m*m : (k+1)*m*m]
			det := 1.0
			for c := range m {
				p := c
				for i := c + 1; i < m; i++ {
					if math.Abs(mat[i*m+c]) > math.Abs(mat[p*m+c]) {
						p = i
					}
				}
				if mat[p*m+c] == 0 {
					det = 0
					break
				}
				if p != c {
					for j := range m {
						mat[c*m+j], mat[p*m+j] = mat[p*m+j], mat[c*m+j]
					}
					det = -det
				}
				det *= mat[c*m+c]
				for i := c + 1; i < m; i++ {
					f := mat[i*m+c] / mat[c*m+c]
					for j := c; j < m; j++ {
						mat[i*m+j] -= f * mat[c*m+j]
					}
				}
			}
			dets[k] = det
		}
		if err := out[0].Resize(x.DType, x.Shape[:r-2]); err != nil {
			return err
		}
		storeFloats(&out[0].Tensor, dets)
		return nil
	}, nil
}

// newWindow builds HannWindow, HammingWindow and BlackmanWindow of the
// size given as input 0, periodic (default) or symmetric.
func newWindow(kind string) func(n *Node) (Kernel, error) {
	return func(n *Node) (Kernel, error) {
		periodic := n.Attrs.Int("periodic", 1) != 0
		dt := n.Attrs.Int("output_datatype", 1)
		if err := n.Attrs.Err(); err != nil {
			return nil, err
		}
		outType, ok := onnxDType(dt)
		if !ok || outType == tensor.Bytes {
			return nil, unsupported("%s output_datatype %d", n.OpType, dt)
		}
		return func(tmp *Scratch, in, out []*Value) error {
			size, err := scalarInt(n.OpType+" size", in[0])
			if err != nil {
				return err
			}
			if size < 0 {
				return badInput("%s size %d", n.OpType, size)
			}
			shape := tmp.Shape(1)
			shape[0] = size
			vals := tmp.Float64s(int(size))
			den := float64(size)
			if !periodic {
				den = float64(size - 1)
			}
			for i := range vals {
				t := 2 * math.Pi * float64(i) / den
				switch kind {
				case "hann":
					vals[i] = 0.5 - 0.5*math.Cos(t)
				case "hamming":
					vals[i] = 25.0/46 - (1-25.0/46)*math.Cos(t)
				default:
					vals[i] = 0.42 - 0.5*math.Cos(t) + 0.08*math.Cos(2*t)
				}
			}
			if err := out[0].Resize(outType, shape); err != nil {
				return err
			}
			storeFloats(&out[0].Tensor, vals)
			return nil
		}, nil
	}
}
