package onnx

// legacyOps are opset 1-6 versions of operators implemented for later
// opsets elsewhere: Gemm and Pow, whose broadcasting was opt-in.
func legacyOps() []Op {
	return []Op{
		{Domain: DomainONNX, Type: "Gemm", Since: 1, Until: 6, New: newLegacyGemm},
		{Domain: DomainONNX, Type: "Pow", Since: 1, Until: 6, New: newLegacyPow},
	}
}

// newLegacyGemm is Gemm before opset 7: C is broadcast only with
// broadcast=1; otherwise it must be [M, N]. Opset 7 broadcasts always, so
// the same kernel runs once C's shape is checked.
func newLegacyGemm(n *Node) (Kernel, error) {
	bcast := n.Attrs.Int("broadcast", 0) != 0
	transA := n.Attrs.Int("transA", 0) != 0
	transB := n.Attrs.Int("transB", 0) != 0
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	k, err := newGemm(n)
	if err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		if c := Arg(in, 2); !bcast && c.Kind == KindTensor {
			a, b := in[0].Tensor.Shape, Arg(in, 1).Tensor.Shape
			if len(a) != 2 || len(b) != 2 {
				return badInput("Gemm: A %v and B %v, want matrices", a, b)
			}
			m, nn := a[0], b[1]
			if transA {
				m = a[1]
			}
			if transB {
				nn = b[0]
			}
			if !equalShape(c.Tensor.Shape, []int64{m, nn}) {
				return badInput("Gemm: C %v is not [%d %d] and broadcast=0", c.Tensor.Shape, m, nn)
			}
		}
		return k(tmp, in, out)
	}, nil
}

// newLegacyPow is Pow before opset 7: with broadcast=1 and axis, the
// exponent's dimensions align with the base's from axis on; without axis,
// with its last dimensions (numpy's rule); with broadcast=0 the shapes
// must be equal.
func newLegacyPow(n *Node) (Kernel, error) {
	bcast := n.Attrs.Int("broadcast", 0) != 0
	hasAxis := n.Attrs.Has("axis")
	axis := n.Attrs.Int("axis", 0)
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	k, err := newPow(n)
	if err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		a, b := in[0], in[1]
		if a.Kind != KindTensor || b.Kind != KindTensor {
			return badInput("Pow: %v and %v", a, b)
		}
		switch {
		case !bcast:
			if !equalShape(a.Tensor.Shape, b.Tensor.Shape) {
				return badInput("Pow: shapes %v and %v differ and broadcast=0", a.Tensor.Shape, b.Tensor.Shape)
			}
		case hasAxis:
			r, bs := len(a.Tensor.Shape), b.Tensor.Shape
			ax := int(axis)
			if ax < 0 {
				ax += r
			}
			if ax < 0 || ax+len(bs) > r {
				return badInput("Pow: B %v does not fit A %v at axis %d", bs, a.Tensor.Shape, axis)
			}
			padded := make([]int64, r-ax)
			copy(padded, bs)
			for i := len(bs); i < len(padded); i++ {
				padded[i] = 1
			}
			view := &Value{Kind: KindTensor, Tensor: b.Tensor}
			view.Tensor.Shape = padded
			return k(tmp, []*Value{a, view}, out)
		}
		return k(tmp, in, out)
	}, nil
}
