package onnx

import (
	"math"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// shapeOps are the operators that compute shapes or move elements without
// arithmetic: Shape, Size, Squeeze, Unsqueeze, Transpose, Slice, Expand,
// Tile, Split, ConstantOfShape, Range, Where and EyeLike (indexing
// operators are in ops_shape_index.go).
func shapeOps() []Op {
	return append([]Op{
		{Domain: DomainONNX, Type: "Shape", Since: 1, New: newShape},
		{Domain: DomainONNX, Type: "Size", Since: 1, New: newSize},
		{Domain: DomainONNX, Type: "Squeeze", Since: 1, Until: 12, New: newSqueeze},
		{Domain: DomainONNX, Type: "Squeeze", Since: 13, New: newSqueeze},
		{Domain: DomainONNX, Type: "Unsqueeze", Since: 1, Until: 12, New: newUnsqueeze},
		{Domain: DomainONNX, Type: "Unsqueeze", Since: 13, New: newUnsqueeze},
		{Domain: DomainONNX, Type: "Transpose", Since: 1, New: newTranspose},
		{Domain: DomainONNX, Type: "Slice", Since: 1, Until: 9, New: newSlice},
		{Domain: DomainONNX, Type: "Slice", Since: 10, New: newSlice},
		{Domain: DomainONNX, Type: "Expand", Since: 8, New: newExpand},
		{Domain: DomainONNX, Type: "Tile", Since: 6, New: newTile},
		{Domain: DomainONNX, Type: "Split", Since: 2, Until: 12, New: newSplit},
		{Domain: DomainONNX, Type: "Split", Since: 13, New: newSplit},
		{Domain: DomainONNX, Type: "ConstantOfShape", Since: 9, New: newConstantOfShape},
		{Domain: DomainONNX, Type: "Range", Since: 11, New: newRange},
		{Domain: DomainONNX, Type: "Where", Since: 9, New: newWhere},
		{Domain: DomainONNX, Type: "EyeLike", Since: 9, New: newEyeLike},
	}, append(indexOps(), stringOps()...)...)
}

func newShape(n *Node) (Kernel, error) {
	start := n.Attrs.Int("start", 0)
	end, hasEnd := n.Attrs.Int("end", 0), n.Attrs.Has("end")
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		if in[0].Kind != KindTensor {
			return badInput("Shape of %v", in[0])
		}
		shape := in[0].Tensor.Shape
		r := int64(len(shape))
		s, e := clampIndex(start, r), r
		if hasEnd {
			e = clampIndex(end, r)
		}
		e = max(e, s)
		o := out[0]
		dims := tmp.Shape(1)
		dims[0] = e - s
		if err := o.Resize(tensor.Int64, dims); err != nil {
			return err
		}
		copy(o.Int64s(), shape[s:e])
		return nil
	}, nil
}

// clampIndex maps a possibly negative index into [0, n].
func clampIndex(i, n int64) int64 {
	if i < 0 {
		i += n
	}
	return min(max(i, 0), n)
}

func newSize(n *Node) (Kernel, error) {
	return func(tmp *Scratch, in, out []*Value) error {
		if in[0].Kind != KindTensor {
			return badInput("Size of %v", in[0])
		}
		if err := out[0].Resize(tensor.Int64, nil); err != nil {
			return err
		}
		out[0].Int64s()[0] = int64(in[0].Len())
		return nil
	}, nil
}

// axesArg returns a node's axes: the attribute before opset 13 (or for
// operators that keep it), else input i (absent: nil).
func axesArg(tmp []int64, n *Node, attr []int64, in []*Value, i int) ([]int64, error) {
	if n.Version < 13 {
		return attr, nil
	}
	v := Arg(in, i)
	if v.Kind == KindNone {
		return nil, nil
	}
	return intsOf(v, tmp)
}

func newSqueeze(n *Node) (Kernel, error) {
	attr := n.Attrs.Ints("axes")
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x, err := tensorValue("Squeeze", in[0])
		if err != nil {
			return err
		}
		axes, err := axesArg(tmp.Int64s(MaxRank), n, attr, in, 1)
		if err != nil {
			return err
		}
		r := len(x.Shape)
		var drop [MaxRank]bool
		for _, a := range axes {
			ax, err := normAxis(a, r)
			if err != nil {
				return err
			}
			if x.Shape[ax] != 1 {
				return badInput("Squeeze axis %d has size %d", a, x.Shape[ax])
			}
			drop[ax] = true
		}
		shape := tmp.Shape(r)[:0]
		for i, d := range x.Shape {
			if (len(axes) == 0 && d == 1) || drop[i] {
				continue
			}
			shape = append(shape, d)
		}
		return reshapeCopy(out[0], x, shape)
	}, nil
}

// reshapeCopy makes out a copy of x with another shape of the same size.
func reshapeCopy(out *Value, x *tensor.Tensor, shape []int64) error {
	if err := out.Resize(x.DType, shape); err != nil {
		return err
	}
	copyData(out.Tensor.Data, x.Data)
	return nil
}

func newUnsqueeze(n *Node) (Kernel, error) {
	attr := n.Attrs.Ints("axes")
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x, err := tensorValue("Unsqueeze", in[0])
		if err != nil {
			return err
		}
		axes, err := axesArg(tmp.Int64s(MaxRank), n, attr, in, 1)
		if err != nil {
			return err
		}
		r := len(x.Shape) + len(axes)
		if r > MaxRank {
			return badInput("Unsqueeze to rank %d", r)
		}
		var ins [MaxRank]bool
		for _, a := range axes {
			ax, err := normAxis(a, r)
			if err != nil {
				return err
			}
			if ins[ax] {
				return badInput("Unsqueeze axis %d repeated", a)
			}
			ins[ax] = true
		}
		shape := tmp.Shape(r)
		j := 0
		for i := range shape {
			if ins[i] {
				shape[i] = 1
				continue
			}
			shape[i] = x.Shape[j]
			j++
		}
		return reshapeCopy(out[0], x, shape)
	}, nil
}

func newTranspose(n *Node) (Kernel, error) {
	perm := n.Attrs.Ints("perm")
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x, err := tensorValue("Transpose", in[0])
		if err != nil {
			return err
		}
		r := len(x.Shape)
		if r > MaxRank || (perm != nil && len(perm) != r) {
			return badInput("Transpose perm %v for rank %d", perm, r)
		}
		src := rowStrides(x.Shape)
		var st strides
		shape := tmp.Shape(r)
		var seen [MaxRank]bool
		for i := range r {
			p := r - 1 - i
			if perm != nil {
				p = int(perm[i])
			}
			if p < 0 || p >= r || seen[p] {
				return badInput("Transpose perm %v", perm)
			}
			seen[p] = true
			shape[i] = x.Shape[p]
			st[i] = src[p]
		}
		if err := out[0].Resize(x.DType, shape); err != nil {
			return err
		}
		copyStrided(out[0].Tensor.Data, x.Data, out[0].Tensor.Shape, &st, 0)
		return nil
	}, nil
}

// newSlice builds Slice: starts, ends and axes are attributes before
// opset 10, inputs 1-4 (with steps) since.
func newSlice(n *Node) (Kernel, error) {
	aStarts, aEnds, aAxes := n.Attrs.Ints("starts"), n.Attrs.Ints("ends"), n.Attrs.Ints("axes")
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x, err := tensorValue("Slice", in[0])
		if err != nil {
			return err
		}
		r := len(x.Shape)
		if r > MaxRank {
			return badInput("Slice of rank %d", r)
		}
		starts, ends, axes := aStarts, aEnds, aAxes
		var steps []int64
		if n.Version >= 10 {
			buf := tmp.Int64s(4 * MaxRank)
			if starts, err = intsOf(in[1], buf[:0:MaxRank]); err != nil {
				return err
			}
			if ends, err = intsOf(in[2], buf[MaxRank:MaxRank:2*MaxRank]); err != nil {
				return err
			}
			axes = nil
			if v := Arg(in, 3); v.Kind != KindNone {
				if axes, err = intsOf(v, buf[2*MaxRank:2*MaxRank:3*MaxRank]); err != nil {
					return err
				}
			}
			if v := Arg(in, 4); v.Kind != KindNone {
				if steps, err = intsOf(v, buf[3*MaxRank:3*MaxRank:4*MaxRank]); err != nil {
					return err
				}
			}
		}
		if len(ends) != len(starts) || (axes != nil && len(axes) != len(starts)) || (steps != nil && len(steps) != len(starts)) {
			return badInput("Slice: starts, ends, axes and steps differ in length")
		}
		shape := tmp.Shape(r)
		copy(shape, x.Shape)
		src := rowStrides(x.Shape)
		st := src
		base := 0
		for i, s := range starts {
			ax := i
			if axes != nil {
				if ax, err = normAxis(axes[i], r); err != nil {
					return err
				}
			}
			step := int64(1)
			if steps != nil {
				step = steps[i]
			}
			if step == 0 {
				return badInput("Slice step 0")
			}
			d := x.Shape[ax]
			b, e := sliceBounds(s, ends[i], step, d)
			cnt := int64(0)
			if step > 0 && e > b {
				cnt = (e - b + step - 1) / step
			} else if step < 0 && b > e {
				cnt = (b - e - step - 1) / -step
			}
			shape[ax] = cnt
			st[ax] = src[ax] * int(step)
			if cnt > 0 {
				base += int(b) * src[ax]
			}
		}
		if err := out[0].Resize(x.DType, shape); err != nil {
			return err
		}
		copyStrided(out[0].Tensor.Data, x.Data, out[0].Tensor.Shape, &st, base)
		return nil
	}, nil
}

// sliceBounds clamps a slice's start and end on a dimension of size d as
// numpy does for the sign of step.
func sliceBounds(s, e, step, d int64) (int64, int64) {
	if s < 0 {
		s += d
	}
	if e < 0 {
		e += d
	}
	if step > 0 {
		return min(max(s, 0), d), min(max(e, 0), d)
	}
	return min(max(s, -1), d-1), min(max(e, -1), d-1)
}

func newExpand(n *Node) (Kernel, error) {
	return func(tmp *Scratch, in, out []*Value) error {
		x, err := tensorValue("Expand", in[0])
		if err != nil {
			return err
		}
		want, err := intsOf(in[1], tmp.Int64s(MaxRank)[:0:MaxRank])
		if err != nil {
			return err
		}
		shape, err := broadcastAll(tmp.Shape(MaxRank), x.Shape, want)
		if err != nil {
			return err
		}
		return broadcastCopy(out[0], x, shape)
	}, nil
}

// broadcastCopy makes out x broadcast to shape.
func broadcastCopy(out *Value, x *tensor.Tensor, shape []int64) error {
	if err := out.Resize(x.DType, shape); err != nil {
		return err
	}
	st := bcastStrides(x.Shape, out.Tensor.Shape)
	copyStrided(out.Tensor.Data, x.Data, out.Tensor.Shape, &st, 0)
	return nil
}

// newTile builds Tile as a strided read of the input viewed with a
// repeat dimension (stride 0) before every dimension.
func newTile(n *Node) (Kernel, error) {
	return func(tmp *Scratch, in, out []*Value) error {
		x, err := tensorValue("Tile", in[0])
		if err != nil {
			return err
		}
		reps, err := intsOf(in[1], tmp.Int64s(MaxRank)[:0:MaxRank])
		if err != nil {
			return err
		}
		r := len(x.Shape)
		if len(reps) != r || 2*r > MaxRank {
			return badInput("Tile repeats %v for rank %d", reps, r)
		}
		buf := tmp.Shape(3 * r)
		shape, view := buf[:r], buf[r:3*r]
		src := rowStrides(x.Shape)
		var st strides
		for i, d := range x.Shape {
			if reps[i] < 0 {
				return badInput("Tile repeat %d", reps[i])
			}
			shape[i] = d * reps[i]
			view[2*i], view[2*i+1] = reps[i], d
			st[2*i+1] = src[i]
		}
		if err := out[0].Resize(x.DType, shape); err != nil {
			return err
		}
		copyStrided(out[0].Tensor.Data, x.Data, view, &st, 0)
		return nil
	}, nil
}

// newSplit builds Split: the sizes come from the split attribute before
// opset 13 and input 1 since; without them, the axis is divided into as
// many (opset 18: num_outputs) parts as the node has outputs, the last
// one smaller when it does not divide.
func newSplit(n *Node) (Kernel, error) {
	axis := n.Attrs.Int("axis", 0)
	attr := n.Attrs.Ints("split")
	n.Attrs.Int("num_outputs", 0)
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	parts := n.NumOutputs
	return func(tmp *Scratch, in, out []*Value) error {
		x, err := tensorValue("Split", in[0])
		if err != nil {
			return err
		}
		ax, err := normAxis(axis, len(x.Shape))
		if err != nil {
			return err
		}
		sizes := attr
		if n.Version >= 13 {
			sizes = nil
			if v := Arg(in, 1); v.Kind != KindNone {
				if sizes, err = intsOf(v, tmp.Int64s(parts)[:0]); err != nil {
					return err
				}
			}
		}
		d := x.Shape[ax]
		if sizes != nil && len(sizes) != len(out) {
			return badInput("Split into %d outputs with sizes %v", len(out), sizes)
		}
		outer := numel(x.Shape[:ax])
		inner := numel(x.Shape[ax+1:])
		shape := tmp.Shape(len(x.Shape))
		copy(shape, x.Shape)
		chunk := (d + int64(parts) - 1) / int64(parts)
		var off int64
		for i, o := range out {
			size := chunk
			if sizes != nil {
				size = sizes[i]
			} else {
				size = min(chunk, d-off)
			}
			if size < 0 || off+size > d {
				return badInput("Split sizes %v for dimension %d", sizes, d)
			}
			shape[ax] = size
			if err := o.Resize(x.DType, shape); err != nil {
				return err
			}
			blk := int(size) * inner
			for k := range outer {
				copyRange(o.Tensor.Data, k*blk, x.Data, (k*int(d)+int(off))*inner, blk)
			}
			off += size
		}
		if off != d {
			return badInput("Split sizes %v do not sum to %d", sizes, d)
		}
		return nil
	}, nil
}

func newConstantOfShape(n *Node) (Kernel, error) {
	val := n.Attrs.Tensor("value")
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if val == nil {
		val = &Value{Kind: KindTensor, Tensor: tensor.Tensor{DType: tensor.FP32, Shape: []int64{1}, Data: []float32{0}}}
	}
	if val.Len() != 1 {
		return nil, attrError("ConstantOfShape value has %d elements", val.Len())
	}
	return func(tmp *Scratch, in, out []*Value) error {
		shape, err := intsOf(in[0], tmp.Int64s(MaxRank)[:0:MaxRank])
		if err != nil {
			return err
		}
		if err := out[0].Resize(val.Tensor.DType, shape); err != nil {
			return err
		}
		fillWith(out[0].Tensor.Data, val.Tensor.Data)
		return nil
	}, nil
}

// fillWith sets every element of dst to the first element of src.
func fillWith(dst, src any) {
	switch d := dst.(type) {
	case []float32:
		fillT(d, src.([]float32)[0])
	case []float64:
		fillT(d, src.([]float64)[0])
	case []int64:
		fillT(d, src.([]int64)[0])
	case []int32:
		fillT(d, src.([]int32)[0])
	case []bool:
		fillT(d, src.([]bool)[0])
	case []uint8:
		fillT(d, src.([]uint8)[0])
	case []uint16:
		fillT(d, src.([]uint16)[0])
	case []uint32:
		fillT(d, src.([]uint32)[0])
	case []uint64:
		fillT(d, src.([]uint64)[0])
	case []int8:
		fillT(d, src.([]int8)[0])
	case []int16:
		fillT(d, src.([]int16)[0])
	case [][]byte:
		fillT(d, src.([][]byte)[0])
	}
}

func fillT[T any](d []T, v T) {
	for i := range d {
		d[i] = v
	}
}

func newRange(n *Node) (Kernel, error) {
	return func(tmp *Scratch, in, out []*Value) error {
		for _, v := range in[:3] {
			if v.Kind != KindTensor || v.Len() != 1 || v.Tensor.DType != in[0].Tensor.DType {
				return badInput("Range wants three scalars of one type, got %v", v)
			}
		}
		buf := tmp.Float64s(3)
		for i := range 3 {
			floatsOf(&in[i].Tensor, buf[i:i+1])
		}
		start, limit, delta := buf[0], buf[1], buf[2]
		if delta == 0 {
			return badInput("Range delta 0")
		}
		cnt := int64(max(math.Ceil((limit-start)/delta), 0))
		shape := tmp.Shape(1)
		shape[0] = cnt
		if err := out[0].Resize(in[0].Tensor.DType, shape); err != nil {
			return err
		}
		switch d := out[0].Tensor.Data.(type) {
		case []int64:
			s, dl := in[0].Int64s()[0], in[2].Int64s()[0]
			for i := range d {
				d[i] = s + int64(i)*dl
			}
		case []int32:
			s, dl := in[0].Int32s()[0], in[2].Int32s()[0]
			for i := range d {
				d[i] = s + int32(i)*dl
			}
		case []int16:
			s, dl := in[0].Tensor.Data.([]int16)[0], in[2].Tensor.Data.([]int16)[0]
			for i := range d {
				d[i] = s + int16(i)*dl
			}
		case []float32:
			s, dl := in[0].Float32s()[0], in[2].Float32s()[0]
			for i := range d {
				d[i] = s + float32(i)*dl
			}
		case []float64:
			for i := range d {
				d[i] = start + float64(i)*delta
			}
		case []uint16:
			if in[0].Tensor.DType != tensor.FP16 {
				return badInput("Range of %v", in[0])
			}
			for i := range d {
				d[i] = tensor.Float32ToFloat16(float32(start + float64(i)*delta))
			}
		default:
			return badInput("Range of %v", in[0])
		}
		return nil
	}, nil
}

func newWhere(n *Node) (Kernel, error) {
	return func(tmp *Scratch, in, out []*Value) error {
		if err := checkType("Where condition", in[0], tensor.Bool); err != nil {
			return err
		}
		x, err := tensorValue("Where", in[1])
		if err != nil {
			return err
		}
		y, err := tensorValue("Where", in[2])
		if err != nil {
			return err
		}
		if x.DType != y.DType {
			return badInput("Where of %v and %v", x.DType, y.DType)
		}
		c := &in[0].Tensor
		shape, err := broadcastAll(tmp.Shape(MaxRank), c.Shape, x.Shape, y.Shape)
		if err != nil {
			return err
		}
		if err := out[0].Resize(x.DType, shape); err != nil {
			return err
		}
		shape = out[0].Tensor.Shape
		sc, sx, sy := bcastStrides(c.Shape, shape), bcastStrides(x.Shape, shape), bcastStrides(y.Shape, shape)
		cond := c.Data.([]bool)
		switch d := out[0].Tensor.Data.(type) {
		case []float32:
			where(d, cond, x.Data.([]float32), y.Data.([]float32), shape, &sc, &sx, &sy)
		case []float64:
			where(d, cond, x.Data.([]float64), y.Data.([]float64), shape, &sc, &sx, &sy)
		case []int64:
			where(d, cond, x.Data.([]int64), y.Data.([]int64), shape, &sc, &sx, &sy)
		case []int32:
			where(d, cond, x.Data.([]int32), y.Data.([]int32), shape, &sc, &sx, &sy)
		case []bool:
			where(d, cond, x.Data.([]bool), y.Data.([]bool), shape, &sc, &sx, &sy)
		case []uint8:
			where(d, cond, x.Data.([]uint8), y.Data.([]uint8), shape, &sc, &sx, &sy)
		case []uint16:
			where(d, cond, x.Data.([]uint16), y.Data.([]uint16), shape, &sc, &sx, &sy)
		case []uint32:
			where(d, cond, x.Data.([]uint32), y.Data.([]uint32), shape, &sc, &sx, &sy)
		case []uint64:
			where(d, cond, x.Data.([]uint64), y.Data.([]uint64), shape, &sc, &sx, &sy)
		case []int8:
			where(d, cond, x.Data.([]int8), y.Data.([]int8), shape, &sc, &sx, &sy)
		case []int16:
			where(d, cond, x.Data.([]int16), y.Data.([]int16), shape, &sc, &sx, &sy)
		case [][]byte:
			where(d, cond, x.Data.([][]byte), y.Data.([][]byte), shape, &sc, &sx, &sy)
		}
		return nil
	}, nil
}

func where[T any](dst []T, c []bool, x, y []T, shape []int64, sc, sx, sy *strides) {
	r := len(shape)
	kc, kx, ky := 0, 0, 0
	if r > 0 {
		kc, kx, ky = sc[r-1], sx[r-1], sy[r-1]
	}
	walk3(shape, sc, sx, sy, func(o, a, b, cc, n int) {
		for j := range n {
			if c[a+j*kc] {
				dst[o+j] = x[b+j*kx]
			} else {
				dst[o+j] = y[cc+j*ky]
			}
		}
	})
}

func newEyeLike(n *Node) (Kernel, error) {
	dt := n.Attrs.Int("dtype", -1)
	k := n.Attrs.Int("k", 0)
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	var outType tensor.DType
	if dt >= 0 {
		var ok bool
		if outType, ok = onnxDType(dt); !ok {
			return nil, unsupported("EyeLike dtype %d", dt)
		}
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x, err := tensorValue("EyeLike", in[0])
		if err != nil {
			return err
		}
		if len(x.Shape) != 2 {
			return badInput("EyeLike of rank %d", len(x.Shape))
		}
		t := outType
		if t == tensor.Invalid {
			t = x.DType
		}
		if err := out[0].Resize(t, x.Shape); err != nil {
			return err
		}
		o := out[0]
		o.Zero()
		rows, cols := x.Shape[0], x.Shape[1]
		for i := range rows {
			j := i + k
			if j >= 0 && j < cols {
				setFromFloat(&o.Tensor, int(i*cols+j), 1)
			}
		}
		return nil
	}, nil
}

// setFromFloat sets element i of t to v converted to t's type.
func setFromFloat(t *tensor.Tensor, i int, v float64) {
	switch d := t.Data.(type) {
	case []float32:
		d[i] = float32(v)
	case []float64:
		d[i] = v
	case []int64:
		d[i] = int64(v)
	case []int32:
		d[i] = int32(v)
	case []int16:
		d[i] = int16(v)
	case []int8:
		d[i] = int8(v)
	case []uint8:
		d[i] = uint8(v)
	case []uint32:
		d[i] = uint32(v)
	case []uint64:
		d[i] = uint64(v)
	case []bool:
		d[i] = v != 0
	case []uint16:
		if t.DType == tensor.FP16 {
			d[i] = tensor.Float32ToFloat16(float32(v))
		} else {
			d[i] = uint16(v)
		}
	}
}

// onnxDType maps an ONNX TensorProto data type to a tensor.DType.
func onnxDType(t int64) (tensor.DType, bool) {
	switch t {
	case 1:
		return tensor.FP32, true
	case 2:
		return tensor.Uint8, true
	case 3:
		return tensor.Int8, true
	case 4:
		return tensor.Uint16, true
	case 5:
		return tensor.Int16, true
	case 6:
		return tensor.Int32, true
	case 7:
		return tensor.Int64, true
	case 8:
		return tensor.Bytes, true
	case 9:
		return tensor.Bool, true
	case 10:
		return tensor.FP16, true
	case 11:
		return tensor.FP64, true
	case 12:
		return tensor.Uint32, true
	case 13:
		return tensor.Uint64, true
	}
	return tensor.Invalid, false
}
