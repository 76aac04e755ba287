package onnx

import (
	"github.com/shoal-ml/shoal/internal/tensor"
)

// indexOps are the operators that read or write elements at computed
// positions: Gather, GatherElements, GatherND, Scatter, ScatterElements,
// ScatterND, NonZero, OneHot, Compress and ReverseSequence.
func indexOps() []Op {
	return []Op{
		{Domain: DomainONNX, Type: "Gather", Since: 1, New: newGather},
		{Domain: DomainONNX, Type: "GatherElements", Since: 11, New: newGatherElements},
		{Domain: DomainONNX, Type: "GatherND", Since: 11, New: newGatherND},
		{Domain: DomainONNX, Type: "Scatter", Since: 9, Until: 10, New: newScatterElements},
		{Domain: DomainONNX, Type: "ScatterElements", Since: 11, New: newScatterElements},
		{Domain: DomainONNX, Type: "ScatterND", Since: 11, New: newScatterND},
		{Domain: DomainONNX, Type: "NonZero", Since: 9, New: newNonZero},
		{Domain: DomainONNX, Type: "OneHot", Since: 9, New: newOneHot},
		{Domain: DomainONNX, Type: "Compress", Since: 9, New: newCompress},
		{Domain: DomainONNX, Type: "ReverseSequence", Since: 10, New: newReverseSequence},
	}
}

// indexList returns the integer tensor v as int64 in buf[:n] (when INT32)
// or v's own data, each negative index moved up by d and checked against
// [0, d). When v's own data has negatives it is copied into buf first.
func indexList(v *Value, buf []int64, d int64) ([]int64, error) {
	idx, err := intsOf(v, buf[:0])
	if err != nil {
		return nil, err
	}
	for i, x := range idx {
		if x < 0 {
			if &idx[0] != &buf[0] {
				copy(buf, idx)
				idx = buf[:len(idx)]
			}
			x += d
			idx[i] = x
		}
		if x < 0 || x >= d {
			return nil, badInput("index %d out of range [%d, %d)", idx[i], -d, d)
		}
	}
	return idx, nil
}

func newGather(n *Node) (Kernel, error) {
	axis := n.Attrs.Int("axis", 0)
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x, err := tensorValue("Gather", in[0])
		if err != nil {
			return err
		}
		ax, err := normAxis(axis, len(x.Shape))
		if err != nil {
			return err
		}
		ind, err := tensorValue("Gather indices", in[1])
		if err != nil {
			return err
		}
		ni := numel(ind.Shape)
		d := x.Shape[ax]
		idx, err := indexList(in[1], tmp.Int64s(ni), d)
		if err != nil {
			return err
		}
		r := len(x.Shape) - 1 + len(ind.Shape)
		if r > MaxRank {
			return badInput("Gather output rank %d", r)
		}
		shape := append(append(append(tmp.Shape(r)[:0], x.Shape[:ax]...), ind.Shape...), x.Shape[ax+1:]...)
		if err := out[0].Resize(x.DType, shape); err != nil {
			return err
		}
		outer, inner := numel(x.Shape[:ax]), numel(x.Shape[ax+1:])
		o := out[0].Tensor.Data
		for k := range outer {
			for j, i := range idx {
				copyRange(o, (k*ni+j)*inner, x.Data, (k*int(d)+int(i))*inner, inner)
			}
		}
		return nil
	}, nil
}

// elementPositions writes into pos, for every element of an index tensor
// of shape ishape, the flat position in a tensor of shape dshape that it
// addresses: its own coordinates with the one on axis replaced by the
// index (GatherElements, ScatterElements).
func elementPositions(pos, idx []int64, ishape, dshape []int64, axis int) error {
	if len(ishape) != len(dshape) {
		return badInput("indices rank %d, data rank %d", len(ishape), len(dshape))
	}
	ds := rowStrides(dshape)
	st := ds
	st[axis] = 0
	r := len(ishape)
	last := st[r-1]
	d := dshape[axis]
	var bad bool
	walk3(ishape, &st, nil, nil, func(o, a, _, _, n int) {
		for j := range n {
			i := idx[o+j]
			if i < 0 {
				i += d
			}
			if i < 0 || i >= d {
				bad = true
				i = 0
			}
			pos[o+j] = int64(a+j*last) + i*int64(ds[axis])
		}
	})
	if bad {
		return badInput("index out of range for dimension %d", d)
	}
	return nil
}

func newGatherElements(n *Node) (Kernel, error) {
	axis := n.Attrs.Int("axis", 0)
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x, err := tensorValue("GatherElements", in[0])
		if err != nil {
			return err
		}
		ind, err := tensorValue("GatherElements indices", in[1])
		if err != nil {
			return err
		}
		ax, err := normAxis(axis, len(x.Shape))
		if err != nil {
			return err
		}
		ni := numel(ind.Shape)
		buf := tmp.Int64s(2 * ni)
		idx, err := intsOf(in[1], buf[:0:ni])
		if err != nil {
			return err
		}
		pos := buf[ni:]
		if err := elementPositions(pos, idx, ind.Shape, x.Shape, ax); err != nil {
			return err
		}
		if err := out[0].Resize(x.DType, ind.Shape); err != nil {
			return err
		}
		copyIndexed(out[0].Tensor.Data, x.Data, pos)
		return nil
	}, nil
}

// ndBlocks describes GatherND and ScatterND: for every index tuple (the
// last dimension of indices, of length m), the flat offset of the block of
// data it addresses, in offs; block is the block size.
func ndBlocks(offs []int64, idx []int64, ishape, dshape []int64, batch int) (block int, err error) {
	q := len(ishape)
	m := int(ishape[q-1])
	if batch+m > len(dshape) {
		return 0, badInput("index tuples of length %d for data rank %d", m, len(dshape))
	}
	ds := rowStrides(dshape)
	block = numel(dshape[batch+m:])
	batchSize := numel(dshape[batch:])
	tuples := numel(ishape[:q-1])
	perBatch := tuples / max(numel(ishape[:batch]), 1)
	for t := range tuples {
		off := int64((t / max(perBatch, 1)) * batchSize)
		for k := range m {
			i := idx[t*m+k]
			d := dshape[batch+k]
			if i < 0 {
				i += d
			}
			if i < 0 || i >= d {
				return 0, badInput("index %d out of range for dimension %d", idx[t*m+k], d)
			}
			off += i * int64(ds[batch+k])
		}
		offs[t] = off
	}
	return block, nil
}

func newGatherND(n *Node) (Kernel, error) {
	batch := int(n.Attrs.Int("batch_dims", 0))
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x, err := tensorValue("GatherND", in[0])
		if err != nil {
			return err
		}
		ind, err := tensorValue("GatherND indices", in[1])
		if err != nil {
			return err
		}
		q := len(ind.Shape)
		if q < 1 || batch >= q {
			return badInput("GatherND indices rank %d", q)
		}
		ni := numel(ind.Shape)
		tuples := numel(ind.Shape[:q-1])
		buf := tmp.Int64s(ni + tuples)
		idx, err := intsOf(in[1], buf[:0:ni])
		if err != nil {
			return err
		}
		offs := buf[ni:]
		block, err := ndBlocks(offs, idx, ind.Shape, x.Shape, batch)
		if err != nil {
			return err
		}
		m := int(ind.Shape[q-1])
		r := q - 1 + len(x.Shape) - batch - m
		shape := append(append(tmp.Shape(r)[:0], ind.Shape[:q-1]...), x.Shape[batch+m:]...)
		if err := out[0].Resize(x.DType, shape); err != nil {
			return err
		}
		for t, off := range offs {
			copyRange(out[0].Tensor.Data, t*block, x.Data, int(off), block)
		}
		return nil
	}, nil
}

// scatterReduction parses a scatter operator's reduction attribute.
func scatterReduction(n *Node) (string, error) {
	red := n.Attrs.String("reduction", "none")
	if err := n.Attrs.Err(); err != nil {
		return "", err
	}
	switch red {
	case "none", "add", "mul", "max", "min":
		return red, nil
	}
	return "", attrError("reduction %q", red)
}

func newScatterElements(n *Node) (Kernel, error) {
	axis := n.Attrs.Int("axis", 0)
	red, err := scatterReduction(n)
	if err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x, err := tensorValue("ScatterElements", in[0])
		if err != nil {
			return err
		}
		ind, err := tensorValue("ScatterElements indices", in[1])
		if err != nil {
			return err
		}
		upd, err := tensorValue("ScatterElements updates", in[2])
		if err != nil {
			return err
		}
		ax, err := normAxis(axis, len(x.Shape))
		if err != nil {
			return err
		}
		ni := numel(ind.Shape)
		if numel(upd.Shape) != ni || upd.DType != x.DType {
			return badInput("updates %v for indices %v", upd.Shape, ind.Shape)
		}
		buf := tmp.Int64s(2 * ni)
		idx, err := intsOf(in[1], buf[:0:ni])
		if err != nil {
			return err
		}
		pos := buf[ni:]
		if err := elementPositions(pos, idx, ind.Shape, x.Shape, ax); err != nil {
			return err
		}
		if err := copyValue(out[0], in[0]); err != nil {
			return err
		}
		return scatterInto(&out[0].Tensor, upd, pos, 1, red)
	}, nil
}

func newScatterND(n *Node) (Kernel, error) {
	red, err := scatterReduction(n)
	if err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x, err := tensorValue("ScatterND", in[0])
		if err != nil {
			return err
		}
		ind, err := tensorValue("ScatterND indices", in[1])
		if err != nil {
			return err
		}
		upd, err := tensorValue("ScatterND updates", in[2])
		if err != nil {
			return err
		}
		q := len(ind.Shape)
		if q < 1 || upd.DType != x.DType {
			return badInput("ScatterND indices %v, updates %v", ind.Shape, upd.DType)
		}
		ni := numel(ind.Shape)
		tuples := numel(ind.Shape[:q-1])
		buf := tmp.Int64s(ni + tuples)
		idx, err := intsOf(in[1], buf[:0:ni])
		if err != nil {
			return err
		}
		offs := buf[ni:]
		block, err := ndBlocks(offs, idx, ind.Shape, x.Shape, 0)
		if err != nil {
			return err
		}
		if numel(upd.Shape) != tuples*block {
			return badInput("ScatterND updates %v", upd.Shape)
		}
		if err := copyValue(out[0], in[0]); err != nil {
			return err
		}
		return scatterInto(&out[0].Tensor, upd, offs, block, red)
	}, nil
}

// scatterInto combines block elements of upd per position into dst at
// pos[i] (element i*block.. of upd goes to pos[i]..), with reduction red.
func scatterInto(dst, upd *tensor.Tensor, pos []int64, block int, red string) error {
	if red == "none" {
		for i, p := range pos {
			copyRange(dst.Data, int(p), upd.Data, i*block, block)
		}
		return nil
	}
	ok := true
	switch d := dst.Data.(type) {
	case []float32:
		scatterReduce(d, upd.Data.([]float32), pos, block, red)
	case []float64:
		scatterReduce(d, upd.Data.([]float64), pos, block, red)
	case []int64:
		scatterReduce(d, upd.Data.([]int64), pos, block, red)
	case []int32:
		scatterReduce(d, upd.Data.([]int32), pos, block, red)
	case []int16:
		scatterReduce(d, upd.Data.([]int16), pos, block, red)
	case []int8:
		scatterReduce(d, upd.Data.([]int8), pos, block, red)
	case []uint8:
		scatterReduce(d, upd.Data.([]uint8), pos, block, red)
	case []uint32:
		scatterReduce(d, upd.Data.([]uint32), pos, block, red)
	case []uint64:
		scatterReduce(d, upd.Data.([]uint64), pos, block, red)
	case []uint16:
		if dst.DType == tensor.FP16 {
			ok = false
			break
		}
		scatterReduce(d, upd.Data.([]uint16), pos, block, red)
	default:
		ok = false
	}
	if !ok {
		return badInput("scatter reduction %q of %v", red, dst.DType)
	}
	return nil
}

func scatterReduce[T number](dst, upd []T, pos []int64, block int, red string) {
	for i, p := range pos {
		d, u := dst[p:int(p)+block], upd[i*block:(i+1)*block]
		for j, v := range u {
			switch red {
			case "add":
				d[j] += v
			case "mul":
				d[j] *= v
			case "max":
				d[j] = max(d[j], v)
			case "min":
				d[j] = min(d[j], v)
			}
		}
	}
}

func newNonZero(n *Node) (Kernel, error) {
	return func(tmp *Scratch, in, out []*Value) error {
		x, err := tensorValue("NonZero", in[0])
		if err != nil {
			return err
		}
		if x.DType == tensor.Bytes {
			return badInput("NonZero of strings")
		}
		cnt := numel(x.Shape)
		vals := floatsOf(x, tmp.Float64s(cnt))
		nz := 0
		for _, v := range vals {
			if v != 0 {
				nz++
			}
		}
		r := len(x.Shape)
		shape := tmp.Shape(2)
		shape[0], shape[1] = int64(r), int64(nz)
		if err := out[0].Resize(tensor.Int64, shape); err != nil {
			return err
		}
		o := out[0].Int64s()
		st := rowStrides(x.Shape)
		k := 0
		for i, v := range vals {
			if v == 0 {
				continue
			}
			rem := i
			for d := range r {
				o[d*nz+k] = int64(rem / st[d])
				rem %= st[d]
			}
			k++
		}
		return nil
	}, nil
}

func newOneHot(n *Node) (Kernel, error) {
	axis := n.Attrs.Int("axis", -1)
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		ind, err := tensorValue("OneHot indices", in[0])
		if err != nil {
			return err
		}
		dv, err := tensorValue("OneHot depth", in[1])
		if err != nil {
			return err
		}
		vals, err := tensorValue("OneHot values", in[2])
		if err != nil {
			return err
		}
		if numel(dv.Shape) != 1 || numel(vals.Shape) != 2 {
			return badInput("OneHot depth %v, values %v", dv.Shape, vals.Shape)
		}
		ni := numel(ind.Shape)
		buf := tmp.Float64s(ni + 1)
		depth := int64(floatsOf(dv, buf[ni:])[0])
		idx := floatsOf(ind, buf[:ni])
		r := len(ind.Shape) + 1
		ax, err := normAxis(axis, r)
		if err != nil {
			return err
		}
		shape := append(append(append(tmp.Shape(r)[:0], ind.Shape[:ax]...), depth), ind.Shape[ax:]...)
		if err := out[0].Resize(vals.DType, shape); err != nil {
			return err
		}
		o := out[0].Tensor.Data
		fillWith(o, vals.Data)
		inner := numel(ind.Shape[ax:])
		for i, f := range idx {
			k := int64(f)
			if k < 0 {
				k += depth
			}
			if k < 0 || k >= depth {
				continue
			}
			outer, rest := i/inner, i%inner
			copyRange(o, (outer*int(depth)+int(k))*inner+rest, vals.Data, 1, 1)
		}
		return nil
	}, nil
}

func newCompress(n *Node) (Kernel, error) {
	axis, hasAxis := n.Attrs.Int("axis", 0), n.Attrs.Has("axis")
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x, err := tensorValue("Compress", in[0])
		if err != nil {
			return err
		}
		if err := checkType("Compress condition", in[1], tensor.Bool); err != nil {
			return err
		}
		cond := in[1].Bools()
		shape := x.Shape
		ax := 0
		flat := tmp.Shape(1)
		if !hasAxis {
			flat[0] = int64(numel(x.Shape))
			shape = flat
		} else if ax, err = normAxis(axis, len(x.Shape)); err != nil {
			return err
		}
		d := int(shape[ax])
		kept := 0
		for i, c := range cond {
			if c && i < d {
				kept++
			}
		}
		outShape := tmp.Int64s(len(shape))
		copy(outShape, shape)
		outShape[ax] = int64(kept)
		if err := out[0].Resize(x.DType, outShape); err != nil {
			return err
		}
		outer, inner := numel(shape[:ax]), numel(shape[ax+1:])
		o := 0
		for k := range outer {
			for i, c := range cond {
				if c && i < d {
					copyRange(out[0].Tensor.Data, o, x.Data, (k*d+i)*inner, inner)
					o += inner
				}
			}
		}
		return nil
	}, nil
}

func newReverseSequence(n *Node) (Kernel, error) {
	batchAxis := int(n.Attrs.Int("batch_axis", 1))
	timeAxis := int(n.Attrs.Int("time_axis", 0))
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if batchAxis+timeAxis != 1 || batchAxis < 0 || timeAxis < 0 {
		return nil, attrError("ReverseSequence batch_axis %d, time_axis %d", batchAxis, timeAxis)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x, err := tensorValue("ReverseSequence", in[0])
		if err != nil {
			return err
		}
		if len(x.Shape) < 2 {
			return badInput("ReverseSequence of rank %d", len(x.Shape))
		}
		lens, err := intsOf(in[1], tmp.Int64s(int(x.Shape[batchAxis]))[:0])
		if err != nil {
			return err
		}
		if err := copyValue(out[0], in[0]); err != nil {
			return err
		}
		st := rowStrides(x.Shape)
		inner := numel(x.Shape[2:])
		for b := range x.Shape[batchAxis] {
			l := lens[b]
			for t := range l {
				src := int(b)*st[batchAxis] + int(t)*st[timeAxis]
				dst := int(b)*st[batchAxis] + int(l-1-t)*st[timeAxis]
				copyRange(out[0].Tensor.Data, dst, x.Data, src, inner)
			}
		}
		return nil
	}, nil
}
