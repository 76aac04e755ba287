package onnx

import (
	"slices"
	"strings"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// tensorOps are the tensor transforms of the NN list: Trilu, CumSum,
// CumProd, TopK, Pad, DepthToSpace, SpaceToDepth, Einsum and Shrink.
func tensorOps() []Op {
	return []Op{
		{Domain: DomainONNX, Type: "Trilu", Since: 14, New: newTrilu},
		{Domain: DomainONNX, Type: "CumSum", Since: 11, New: newCumulative(false)},
		{Domain: DomainONNX, Type: "CumProd", Since: 26, New: newCumulative(true)},
		{Domain: DomainONNX, Type: "TopK", Since: 1, New: newTopK},
		{Domain: DomainONNX, Type: "Pad", Since: 2, Until: 10, New: newPad},
		{Domain: DomainONNX, Type: "Pad", Since: 11, New: newPad},
		{Domain: DomainONNX, Type: "DepthToSpace", Since: 1, New: newDepthToSpace},
		{Domain: DomainONNX, Type: "SpaceToDepth", Since: 1, New: newSpaceToDepth},
		{Domain: DomainONNX, Type: "Einsum", Since: 12, New: newEinsum},
		{Domain: DomainONNX, Type: "Shrink", Since: 9, New: newShrink},
	}
}

func newTrilu(n *Node) (Kernel, error) {
	upper := n.Attrs.Int("upper", 1) != 0
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x, err := tensorValue("Trilu", in[0])
		if err != nil {
			return err
		}
		r := len(x.Shape)
		if r < 2 {
			return badInput("Trilu of rank %d", r)
		}
		var k int64
		if v := Arg(in, 1); v.Kind != KindNone {
			if k, err = scalarInt("Trilu k", v); err != nil {
				return err
			}
		}
		if err := out[0].Resize(x.DType, x.Shape); err != nil {
			return err
		}
		o := out[0]
		o.Zero()
		rows, cols := x.Shape[r-2], x.Shape[r-1]
		mats := numel(x.Shape[:r-2])
		for m := range mats {
			for i := range rows {
				lo, hi := int64(0), cols
				if upper {
					lo = min(max(i+k, 0), cols)
				} else {
					hi = min(max(i+k+1, 0), cols)
				}
				if hi > lo {
					at := (int64(m)*rows+i)*cols + lo
					copyRange(o.Tensor.Data, int(at), x.Data, int(at), int(hi-lo))
				}
			}
		}
		return nil
	}, nil
}

// newCumulative builds CumSum (prod false) and CumProd along the axis
// given as input 1, with the exclusive and reverse attributes.
func newCumulative(prod bool) func(n *Node) (Kernel, error) {
	return func(n *Node) (Kernel, error) {
		exclusive := n.Attrs.Int("exclusive", 0) != 0
		reverse := n.Attrs.Int("reverse", 0) != 0
		if err := n.Attrs.Err(); err != nil {
			return nil, err
		}
		return func(tmp *Scratch, in, out []*Value) error {
			if err := checkType(n.OpType, in[0], numTypes...); err != nil {
				return err
			}
			x := &in[0].Tensor
			a, err := scalarInt(n.OpType+" axis", in[1])
			if err != nil {
				return err
			}
			ax, err := normAxis(a, len(x.Shape))
			if err != nil {
				return err
			}
			nx := numel(x.Shape)
			buf := tmp.Float64s(2 * nx)
			xs, ys := floatsOf(x, buf[:nx]), buf[nx:]
			outer, d, inner := numel(x.Shape[:ax]), int(x.Shape[ax]), numel(x.Shape[ax+1:])
			for o := range outer {
				for i := range inner {
					acc := 0.0
					if prod {
						acc = 1
					}
					for s := range d {
						k := s
						if reverse {
							k = d - 1 - s
						}
						j := (o*d+k)*inner + i
						if exclusive {
							ys[j] = acc
						}
						if prod {
							acc *= xs[j]
						} else {
							acc += xs[j]
						}
						if !exclusive {
							ys[j] = acc
						}
					}
				}
			}
			if err := out[0].Resize(x.DType, x.Shape); err != nil {
				return err
			}
			storeFloats(&out[0].Tensor, ys)
			return nil
		}, nil
	}
}

// newTopK builds TopK: k is an attribute in opset 1 and input 1 since;
// ties keep the lower index first.
func newTopK(n *Node) (Kernel, error) {
	axis := n.Attrs.Int("axis", -1)
	attrK := n.Attrs.Int("k", 0)
	largest := n.Attrs.Int("largest", 1) != 0
	n.Attrs.Int("sorted", 1)
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		if err := checkType("TopK", in[0], numTypes...); err != nil {
			return err
		}
		x := &in[0].Tensor
		k := attrK
		if n.Version >= 10 {
			var err error
			if k, err = scalarInt("TopK k", in[1]); err != nil {
				return err
			}
		}
		r := len(x.Shape)
		ax, err := normAxis(axis, r)
		if err != nil {
			return err
		}
		outer, d, inner := numel(x.Shape[:ax]), int(x.Shape[ax]), numel(x.Shape[ax+1:])
		if k < 0 || int(k) > d {
			return badInput("TopK k %d for dimension %d", k, d)
		}
		nx := numel(x.Shape)
		no := outer * int(k) * inner
		fb := tmp.Float64s(nx + no)
		xs, ys := floatsOf(x, fb[:nx]), fb[nx:]
		order := tmp.Int64s(d)
		shape := tmp.Shape(r)
		copy(shape, x.Shape)
		shape[ax] = k
		if err := out[1].Resize(tensor.Int64, shape); err != nil {
			return err
		}
		idx := out[1].Int64s()
		for o := range outer {
			for i := range inner {
				for s := range order {
					order[s] = int64(s)
				}
				at := func(s int64) float64 { return xs[(o*d+int(s))*inner+i] }
				slices.SortStableFunc(order, func(p, q int64) int {
					a, b := at(p), at(q)
					if largest {
						a, b = b, a
					}
					switch {
					case a < b:
						return -1
					case a > b:
						return 1
					}
					return 0
				})
				for s := range int(k) {
					j := (o*int(k)+s)*inner + i
					idx[j] = order[s]
					ys[j] = at(order[s])
				}
			}
		}
		if err := out[0].Resize(x.DType, shape); err != nil {
			return err
		}
		storeFloats(&out[0].Tensor, ys)
		return nil
	}, nil
}

// newPad builds Pad: pads (begin values then end values, negative to
// crop), mode constant, reflect, edge or wrap; attributes before opset 11,
// inputs (pads, constant_value, axes) since.
func newPad(n *Node) (Kernel, error) {
	mode := n.Attrs.String("mode", "constant")
	attrPads := n.Attrs.Ints("pads")
	if n.Version < 11 && attrPads == nil {
		attrPads = n.Attrs.Ints("paddings")
	}
	value := float64(n.Attrs.Float("value", 0))
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	switch mode {
	case "constant", "reflect", "edge", "wrap":
	default:
		return nil, attrError("Pad mode %q", mode)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x, err := tensorValue("Pad", in[0])
		if err != nil {
			return err
		}
		r := len(x.Shape)
		if r > MaxRank {
			return badInput("Pad of rank %d", r)
		}
		ib := tmp.Int64s(4 * MaxRank)
		pads := attrPads
		var axes []int64
		if n.Version >= 11 {
			if pads, err = intsOf(in[1], ib[:0:2*MaxRank]); err != nil {
				return err
			}
			if v := Arg(in, 3); v.Kind != KindNone {
				if axes, err = intsOf(v, ib[2*MaxRank:2*MaxRank:3*MaxRank]); err != nil {
					return err
				}
			}
		}
		var pb, pe [MaxRank]int
		na := r
		if axes != nil {
			na = len(axes)
		}
		if len(pads) != 2*na {
			return badInput("Pad pads %v for %d axes", pads, na)
		}
		for i := range na {
			ax := i
			if axes != nil {
				if ax, err = normAxis(axes[i], r); err != nil {
					return err
				}
			}
			pb[ax], pe[ax] = int(pads[i]), int(pads[na+i])
		}
		shape := tmp.Shape(r)
		for i, d := range x.Shape {
			shape[i] = d + int64(pb[i]+pe[i])
			if shape[i] < 0 || (d == 0 && shape[i] > 0 && mode != "constant") {
				return badInput("Pad of dimension %d by %d, %d", d, pb[i], pe[i])
			}
		}
		if err := out[0].Resize(x.DType, shape); err != nil {
			return err
		}
		o := out[0]
		nOut := o.Len()
		// Constant: fill, then copy the kept region as a strided copy.
		src := rowStrides(x.Shape)
		if mode == "constant" {
			if cv := Arg(in, 2); n.Version >= 11 && cv.Kind == KindTensor && cv.Len() > 0 {
				fillWith(o.Tensor.Data, cv.Tensor.Data)
			} else if nOut > 0 {
				setFromFloat(&o.Tensor, 0, value)
				fillWith(o.Tensor.Data, o.Tensor.Data)
			}
		}
		idx := tmp.Int64s(nOut + 4*MaxRank)[4*MaxRank:]
		// Each output element's source, -1 for the constant.
		var pos [MaxRank]int
		for j := range nOut {
			at := int64(0)
			for i := range r {
				c := pos[i] - pb[i]
				d := int(x.Shape[i])
				if c < 0 || c >= d {
					switch mode {
					case "constant":
						at = -1
					case "edge":
						c = min(max(c, 0), d-1)
					case "wrap":
						c = ((c % d) + d) % d
					case "reflect":
						if d == 1 {
							c = 0
						} else {
							p := 2 * (d - 1)
							c = ((c % p) + p) % p
							if c >= d {
								c = p - c
							}
						}
					}
				}
				if at >= 0 {
					at += int64(c * src[i])
				}
			}
			idx[j] = at
			for i := r - 1; i >= 0; i-- {
				pos[i]++
				if pos[i] < int(shape[i]) {
					break
				}
				pos[i] = 0
			}
		}
		for j, s := range idx {
			if s >= 0 {
				copyRange(o.Tensor.Data, j, x.Data, int(s), 1)
			}
		}
		return nil
	}, nil
}

// viewTranspose makes out the tensor x viewed with shape view, transposed
// by perm, and reshaped to shape.
func viewTranspose(out *Value, x *tensor.Tensor, view []int64, perm []int, shape []int64, tv []int64) error {
	vs := rowStrides(view)
	var st strides
	for i, p := range perm {
		tv[i] = view[p]
		st[i] = vs[p]
	}
	if err := out.Resize(x.DType, shape); err != nil {
		return err
	}
	copyStrided(out.Tensor.Data, x.Data, tv, &st, 0)
	return nil
}

func newDepthToSpace(n *Node) (Kernel, error) {
	b := n.Attrs.Int("blocksize", 0)
	mode := n.Attrs.String("mode", "DCR")
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if b < 1 || (mode != "DCR" && mode != "CRD") {
		return nil, attrError("DepthToSpace blocksize %d mode %q", b, mode)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x, err := tensorValue("DepthToSpace", in[0])
		if err != nil {
			return err
		}
		if len(x.Shape) != 4 || x.Shape[1]%(b*b) != 0 {
			return badInput("DepthToSpace of %v by %d", x.Shape, b)
		}
		nb, c, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
		buf := tmp.Shape(16)
		view, shape, tv := buf[:6], buf[6:10], buf[10:16]
		var perm []int
		if mode == "DCR" {
			copy(view, []int64{nb, b, b, c / (b * b), h, w})
			perm = dcrPerm[:]
		} else {
			copy(view, []int64{nb, c / (b * b), b, b, h, w})
			perm = crdPerm[:]
		}
		copy(shape, []int64{nb, c / (b * b), h * b, w * b})
		return viewTranspose(out[0], x, view, perm, shape, tv)
	}, nil
}

var (
	dcrPerm = [6]int{0, 3, 4, 1, 5, 2}
	crdPerm = [6]int{0, 1, 4, 2, 5, 3}
	s2dPerm = [6]int{0, 3, 5, 1, 2, 4}
)

func newSpaceToDepth(n *Node) (Kernel, error) {
	b := n.Attrs.Int("blocksize", 0)
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if b < 1 {
		return nil, attrError("SpaceToDepth blocksize %d", b)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x, err := tensorValue("SpaceToDepth", in[0])
		if err != nil {
			return err
		}
		if len(x.Shape) != 4 || x.Shape[2]%b != 0 || x.Shape[3]%b != 0 {
			return badInput("SpaceToDepth of %v by %d", x.Shape, b)
		}
		nb, c, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
		buf := tmp.Shape(16)
		view, shape, tv := buf[:6], buf[6:10], buf[10:16]
		copy(view, []int64{nb, c, h / b, b, w / b, b})
		copy(shape, []int64{nb, c * b * b, h / b, w / b})
		return viewTranspose(out[0], x, view, s2dPerm[:], shape, tv)
	}, nil
}

func newShrink(n *Node) (Kernel, error) {
	lambd := float64(n.Attrs.Float("lambd", 0.5))
	bias := float64(n.Attrs.Float("bias", 0))
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	f := func(x float64) float64 {
		switch {
		case x < -lambd:
			return x + bias
		case x > lambd:
			return x - bias
		}
		return 0
	}
	return func(tmp *Scratch, in, out []*Value) error {
		if err := checkType("Shrink", in[0], numTypes...); err != nil {
			return err
		}
		x := &in[0].Tensor
		nx := numel(x.Shape)
		xs := floatsOf(x, tmp.Float64s(nx))
		for i, v := range xs {
			xs[i] = f(v)
		}
		if err := out[0].Resize(x.DType, x.Shape); err != nil {
			return err
		}
		storeFloats(&out[0].Tensor, xs)
		return nil
	}, nil
}

// einsumPlan is a parsed Einsum equation: each operand's letters (with
// "..." expanded at run time) and the output's.
type einsumPlan struct {
	inputs   []string
	output   string
	explicit bool
}

func parseEinsum(eq string) (einsumPlan, error) {
	eq = strings.ReplaceAll(eq, " ", "")
	var p einsumPlan
	lhs, rhs, ok := strings.Cut(eq, "->")
	p.explicit = ok
	p.output = rhs
	p.inputs = strings.Split(lhs, ",")
	for _, s := range append(slices.Clone(p.inputs), rhs) {
		t := strings.ReplaceAll(s, "...", "")
		for _, c := range t {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				return p, attrError("Einsum equation %q", eq)
			}
		}
	}
	return p, nil
}

// newEinsum builds Einsum as one loop over every combination of the
// equation's letters, accumulating products in float64: simple and
// general (diagonals, broadcasting "...", implicit output), not fast.
func newEinsum(n *Node) (Kernel, error) {
	eq := n.Attrs.String("equation", "")
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	plan, err := parseEinsum(eq)
	if err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		if len(in) != len(plan.inputs) {
			return badInput("Einsum %q with %d inputs", eq, len(in))
		}
		// Expand "..." into upper-case-free placeholder digits '0'..'9'.
		ell := 0
		terms := make([]string, len(in))
		for i, s := range plan.inputs {
			if err := checkType("Einsum", in[i], numTypes...); err != nil {
				return err
			}
			r := len(in[i].Tensor.Shape)
			if strings.Contains(s, "...") {
				k := r - (len(s) - 3)
				ell = max(ell, k)
				s = strings.Replace(s, "...", ellipsis(k, ell), 1)
			}
			if len(s) != r {
				return badInput("Einsum term %q for rank %d", s, r)
			}
			terms[i] = s
		}
		// Ellipsis dimensions align to the right: recompute with ell.
		for i, s := range plan.inputs {
			if strings.Contains(s, "...") {
				k := len(in[i].Tensor.Shape) - (len(s) - 3)
				terms[i] = strings.Replace(s, "...", ellipsis(k, ell), 1)
			}
		}
		outTerm := plan.output
		if plan.explicit {
			outTerm = strings.Replace(outTerm, "...", ellipsis(ell, ell), 1)
		} else {
			count := map[rune]int{}
			for _, t := range terms {
				for _, c := range t {
					count[c]++
				}
			}
			var letters []rune
			for c, k := range count {
				if k == 1 && (c < '0' || c > '9') {
					letters = append(letters, c)
				}
			}
			slices.Sort(letters)
			outTerm = ellipsis(ell, ell) + string(letters)
		}
		size := map[rune]int{}
		var all []rune
		for i, t := range terms {
			for j, c := range t {
				d := int(in[i].Tensor.Shape[j])
				if old, ok := size[c]; ok && old != d {
					if old == 1 {
						size[c] = d
					} else if d != 1 {
						return badInput("Einsum letter %c has sizes %d and %d", c, old, d)
					}
					continue
				} else if !ok {
					all = append(all, c)
				}
				size[c] = d
			}
		}
		shape := make([]int64, len(outTerm))
		for i, c := range outTerm {
			s, ok := size[c]
			if !ok {
				return badInput("Einsum output letter %c not in inputs", c)
			}
			shape[i] = int64(s)
		}
		letterIdx := map[rune]int{}
		dims := make([]int, len(all))
		for i, c := range all {
			letterIdx[c] = i
			dims[i] = size[c]
		}
		// Strides of each operand and the output over all letters.
		strideOf := func(term string, shp []int64) []int {
			st := make([]int, len(all))
			acc := 1
			for j := len(term) - 1; j >= 0; j-- {
				if shp[j] != 1 {
					st[letterIdx[rune(term[j])]] += acc
				}
				acc *= int(shp[j])
			}
			return st
		}
		ops := make([][]float64, len(in))
		ins := make([][]int, len(in))
		for i, v := range in {
			ops[i] = floatsOf(&v.Tensor, make([]float64, v.Len()))
			ins[i] = strideOf(terms[i], v.Tensor.Shape)
		}
		ost := strideOf(outTerm, shape)
		res := make([]float64, numel(shape))
		total := 1
		for _, d := range dims {
			total *= d
		}
		pos := make([]int, len(all))
		for range total {
			prod := 1.0
			for i := range ops {
				at := 0
				for j, p := range pos {
					at += p * ins[i][j]
				}
				prod *= ops[i][at]
			}
			at := 0
			for j, p := range pos {
				at += p * ost[j]
			}
			res[at] += prod
			for j := len(pos) - 1; j >= 0; j-- {
				pos[j]++
				if pos[j] < dims[j] {
					break
				}
				pos[j] = 0
			}
		}
		if err := out[0].Resize(in[0].Tensor.DType, shape); err != nil {
			return err
		}
		storeFloats(&out[0].Tensor, res)
		return nil
	}, nil
}

// ellipsis returns the placeholder letters of the last k of ell
// broadcast dimensions.
func ellipsis(k, ell int) string {
	var b strings.Builder
	for i := ell - k; i < ell; i++ {
		b.WriteByte(byte('0' + i))
	}
	return b.String()
}
