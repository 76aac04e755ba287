package onnx

import (
	"fmt"
	"math"
	"strconv"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// coreOps are the remaining default-domain operators every converter
// emits: softmax, Gemm, Cast, Constant, the reshaping trio, ArgMax, Clip.
func coreOps() []Op {
	return []Op{
		{Domain: DomainONNX, Type: "Softmax", Since: 1, Until: 12, New: newSoftmax(false)},
		{Domain: DomainONNX, Type: "Softmax", Since: 13, New: newSoftmax(false)},
		{Domain: DomainONNX, Type: "LogSoftmax", Since: 1, Until: 12, New: newSoftmax(true)},
		{Domain: DomainONNX, Type: "LogSoftmax", Since: 13, New: newSoftmax(true)},
		{Domain: DomainONNX, Type: "Gemm", Since: 7, New: newGemm},
		{Domain: DomainONNX, Type: "Cast", Since: 6, New: newCast},
		{Domain: DomainONNX, Type: "Constant", Since: 1, New: newConstant},
		{Domain: DomainONNX, Type: "Reshape", Since: 5, New: newReshape},
		{Domain: DomainONNX, Type: "Flatten", Since: 1, New: newFlatten},
		{Domain: DomainONNX, Type: "Concat", Since: 4, New: newConcat},
		{Domain: DomainONNX, Type: "ArgMax", Since: 1, New: newArgExt(false)},
		{Domain: DomainONNX, Type: "ArgMin", Since: 1, New: newArgExt(true)},
		{Domain: DomainONNX, Type: "Clip", Since: 6, New: newClip},
	}
}

// axisIndex maps a possibly negative axis into [0, rank) (axis 0 of a scalar is allowed).
func axisIndex(axis int64, rank int) (int, error) {
	if axis < 0 {
		axis += int64(rank)
	}
	if axis < 0 || axis >= int64(max(rank, 1)) {
		return 0, badInput("axis %d out of range for rank %d", axis, rank)
	}
	return int(axis), nil
}

// prod multiplies dims.
func prod(dims []int64) int {
	n := 1
	for _, d := range dims {
		n *= int(d)
	}
	return n
}

func newSoftmax(log bool) func(n *Node) (Kernel, error) {
	return func(n *Node) (Kernel, error) {
		legacy := n.Version < 13
		def := int64(-1)
		if legacy {
			def = 1
		}
		axisAttr := n.Attrs.Int("axis", def)
		return func(tmp *Scratch, in, out []*Value) error {
			x := in[0]
			if err := checkType(n.OpType, x, tensor.FP32, tensor.FP64, tensor.FP16); err != nil {
				return err
			}
			shape := x.Tensor.Shape
			axis, err := axisIndex(axisAttr, len(shape))
			if err != nil {
				return err
			}
			// outer x dim x inner: the softmax runs over dim with stride inner.
			outer, dim, inner := prod(shape[:axis]), int(shape[axis]), prod(shape[axis+1:])
			if len(shape) == 0 {
				outer, dim, inner = 1, 1, 1
			}
			if legacy { // coerced to 2-D: [outer, rest]
				dim, inner = prod(shape[axis:]), 1
			}
			if err := out[0].Resize(x.Tensor.DType, shape); err != nil {
				return err
			}
			switch d := x.Tensor.Data.(type) {
			case []float32:
				softmax(out[0].Float32s(), d, outer, dim, inner, log)
			case []float64:
				softmax(out[0].Float64s(), d, outer, dim, inner, log)
			case []uint16:
				buf := tmp.Float32s(2 * len(d))
				xs, ys := buf[:len(d)], buf[len(d):]
				for i, h := range d {
					xs[i] = tensor.Float16ToFloat32(h)
				}
				softmax(ys, xs, outer, dim, inner, log)
				o := out[0].Tensor.Data.([]uint16)
				for i, f := range ys {
					o[i] = tensor.Float32ToFloat16(f)
				}
			}
			return nil
		}, nil
	}
}

func softmax[T float32 | float64](y, x []T, outer, dim, inner int, log bool) {
	for o := range outer {
		for i := range inner {
			base := o*dim*inner + i
			m := math.Inf(-1)
			for j := range dim {
				m = math.Max(m, float64(x[base+j*inner]))
			}
			var sum float64
			for j := range dim {
				e := math.Exp(float64(x[base+j*inner]) - m)
				sum += e
				if !log {
					y[base+j*inner] = T(e)
				}
			}
			if log {
				ls := math.Log(sum)
				for j := range dim {
					y[base+j*inner] = T(float64(x[base+j*inner]) - m - ls)
				}
				continue
			}
			for j := range dim {
				y[base+j*inner] = T(float64(y[base+j*inner]) / sum)
			}
		}
	}
}

func newGemm(n *Node) (Kernel, error) {
	alpha := n.Attrs.Float("alpha", 1)
	beta := n.Attrs.Float("beta", 1)
	transA := n.Attrs.Int("transA", 0) != 0
	transB := n.Attrs.Int("transB", 0) != 0
	return func(tmp *Scratch, in, out []*Value) error {
		a, b, c := in[0], in[1], Arg(in, 2)
		if err := checkType("Gemm A", a, tensor.FP32, tensor.FP64); err != nil {
			return err
		}
		if b.Kind != KindTensor || b.Tensor.DType != a.Tensor.DType || len(a.Tensor.Shape) != 2 || len(b.Tensor.Shape) != 2 {
			return badInput("Gemm of %v and %v", a, b)
		}
		m, k := a.Tensor.Shape[0], a.Tensor.Shape[1]
		if transA {
			m, k = k, m
		}
		k2, nn := b.Tensor.Shape[0], b.Tensor.Shape[1]
		if transB {
			k2, nn = nn, k2
		}
		if k != k2 {
			return badInput("Gemm of %v and %v (transA %v, transB %v)", a, b, transA, transB)
		}
		shape := tmp.Shape(2)
		shape[0], shape[1] = m, nn
		if err := out[0].Resize(a.Tensor.DType, shape); err != nil {
			return err
		}
		o := out[0]
		M, N, K := int(m), int(nn), int(k)
		betaUsed := beta != 0 && c.Kind == KindTensor
		if betaUsed {
			if c.Tensor.DType != a.Tensor.DType {
				return badInput("Gemm C is %v", c)
			}
			if _, err := BroadcastShape(tmp.Shape(2), shape[:2:2], c.Tensor.Shape); err != nil || len(c.Tensor.Shape) > 2 {
				return badInput("Gemm C %v does not broadcast to [%d %d]", c.Tensor.Shape, M, N)
			}
			shape = o.Tensor.Shape
			// Fill the output with C broadcast, then accumulate.
			ForEachRun(shape, shape, c.Tensor.Shape, func(oi, _, _, ic, kc, cnt int) {
				switch c.Tensor.DType {
				case tensor.FP32:
					src, dst := c.Float32s(), o.Float32s()[oi:oi+cnt]
					for j := range dst {
						dst[j] = src[ic+j*kc]
					}
				case tensor.FP64:
					src, dst := c.Float64s(), o.Float64s()[oi:oi+cnt]
					for j := range dst {
						dst[j] = src[ic+j*kc]
					}
				}
			})
		}
		lda, ldb := K, N
		if transA {
			lda = M
		}
		if transB {
			ldb = K
		}
		switch a.Tensor.DType {
		case tensor.FP32:
			bt := float32(0)
			if betaUsed {
				bt = beta
			}
			sgemm(transA, transB, M, N, K, alpha, a.Float32s(), lda, b.Float32s(), ldb, bt, o.Float32s(), N)
		case tensor.FP64:
			A, B, C := a.Float64s(), b.Float64s(), o.Float64s()
			for i := range M {
				for j := range N {
					var s float64
					for p := range K {
						var av, bv float64
						if transA {
							av = float64(A[p*lda+i])
						} else {
							av = float64(A[i*lda+p])
						}
						if transB {
							bv = float64(B[j*ldb+p])
						} else {
							bv = float64(B[p*ldb+j])
						}
						s += av * bv
					}
					if betaUsed {
						C[i*N+j] = float64(alpha)*s + float64(beta)*C[i*N+j]
					} else {
						C[i*N+j] = float64(alpha) * s
					}
				}
			}
		}
		return nil
	}, nil
}

func newCast(n *Node) (Kernel, error) {
	to, err := dtypeOf(int32(n.Attrs.Int("to", 0)))
	if err != nil {
		return nil, err
	}
	if n.Attrs.Int("saturate", 1) != 1 {
		return nil, fmt.Errorf("%w: Cast saturate=0", ErrUnsupported)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x := in[0]
		if x.Kind != KindTensor {
			return badInput("Cast of %v", x)
		}
		if err := out[0].Resize(to, x.Tensor.Shape); err != nil {
			return err
		}
		return castInto(out[0], x)
	}, nil
}

// castInto converts x's elements into o (already resized to x's shape).
func castInto(o, x *Value) error {
	from, to := x.Tensor.DType, o.Tensor.DType
	n := x.Len()
	if from == to {
		copyData(o.Tensor.Data, x.Tensor.Data)
		return nil
	}
	if to == tensor.Bytes {
		dst := o.Strings()
		for i := range n {
			dst[i] = formatElem(x, i)
		}
		return nil
	}
	if from == tensor.Bytes {
		src := x.Strings()
		for i := range n {
			f, err := strconv.ParseFloat(string(src[i]), 64)
			if err != nil {
				f = parseSpecial(string(src[i]))
			}
			setFloat(o, i, f)
		}
		return nil
	}
	switch d := x.Tensor.Data.(type) {
	case []int64:
		if to == tensor.FP32 || to == tensor.FP64 || to == tensor.Bool {
			for i, v := range d {
				setFloat(o, i, float64(v))
			}
			return nil
		}
		for i, v := range d {
			setInt(o, i, v)
		}
		return nil
	case []uint64:
		for i, v := range d {
			if to == tensor.FP32 || to == tensor.FP64 || to == tensor.Bool {
				setFloat(o, i, float64(v))
			} else {
				setInt(o, i, int64(v))
			}
		}
		return nil
	}
	for i := range n {
		var f float64
		if from == tensor.FP16 {
			f = float64(tensor.Float16ToFloat32(x.Tensor.Data.([]uint16)[i]))
		} else {
			f = float64At(x.Tensor.Data, i)
		}
		setFloat(o, i, f)
	}
	return nil
}

func parseSpecial(s string) float64 {
	switch s {
	case "INF", "inf", "+INF", "+inf", "Infinity", "+Infinity":
		return math.Inf(1)
	case "-INF", "-inf", "-Infinity":
		return math.Inf(-1)
	}
	return math.NaN()
}

// formatElem formats element i of x as ONNX's Cast to STRING does (numpy
// str of the value). It allocates; casts to strings are not on hot paths.
func formatElem(x *Value, i int) []byte {
	switch d := x.Tensor.Data.(type) {
	case []float32:
		return []byte(formatFloat(float64(d[i]), 32))
	case []float64:
		return []byte(formatFloat(d[i], 64))
	case []bool:
		if d[i] {
			return []byte("True")
		}
		return []byte("False")
	case []uint16:
		if x.Tensor.DType == tensor.FP16 {
			return []byte(formatFloat(float64(tensor.Float16ToFloat32(d[i])), 32))
		}
	case []int64:
		return strconv.AppendInt(nil, d[i], 10)
	case []uint64:
		return strconv.AppendUint(nil, d[i], 10)
	}
	return strconv.AppendFloat(nil, float64At(x.Tensor.Data, i), 'g', -1, 64)
}

func formatFloat(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "INF"
	case math.IsInf(f, -1):
		return "-INF"
	}
	return strconv.FormatFloat(f, 'g', -1, bits)
}

// setFloat stores f into element i of o, converting like C (truncation
// toward zero for integers).
func setFloat(o *Value, i int, f float64) {
	switch d := o.Tensor.Data.(type) {
	case []float32:
		d[i] = float32(f)
	case []float64:
		d[i] = f
	case []bool:
		d[i] = f != 0
	case []uint16:
		if o.Tensor.DType == tensor.FP16 {
			d[i] = tensor.Float32ToFloat16(float32(f))
		} else {
			d[i] = uint16(int64(f))
		}
	default:
		if math.IsNaN(f) || math.IsInf(f, 0) {
			setInt(o, i, math.MinInt64)
			return
		}
		if f >= 0 && f >= 1<<63 {
			setInt(o, i, int64(uint64(f)))
			return
		}
		setInt(o, i, int64(f))
	}
}

// setInt stores v into element i of an integer, bool or float o, wrapping
// like C.
func setInt(o *Value, i int, v int64) {
	switch d := o.Tensor.Data.(type) {
	case []int64:
		d[i] = v
	case []int32:
		d[i] = int32(v)
	case []int16:
		d[i] = int16(v)
	case []int8:
		d[i] = int8(v)
	case []uint64:
		d[i] = uint64(v)
	case []uint32:
		d[i] = uint32(v)
	case []uint16:
		if o.Tensor.DType == tensor.FP16 {
			d[i] = tensor.Float32ToFloat16(float32(v))
		} else {
			d[i] = uint16(v)
		}
	case []uint8:
		d[i] = uint8(v)
	case []bool:
		d[i] = v != 0
	case []float32:
		d[i] = float32(v)
	case []float64:
		d[i] = float64(v)
	}
}

func newConstant(n *Node) (Kernel, error) {
	var v *Value
	set := 0
	if n.Attrs.Has("value") {
		v = n.Attrs.Tensor("value")
		set++
	}
	if n.Attrs.Has("sparse_value") {
		return nil, fmt.Errorf("%w: Constant sparse_value", ErrUnsupported)
	}
	scalar := func(dt tensor.DType, shape []int64, data any) {
		v = &Value{Kind: KindTensor, Tensor: tensor.Tensor{DType: dt, Shape: shape, Data: data}}
		set++
	}
	if n.Attrs.Has("value_float") {
		scalar(tensor.FP32, nil, []float32{n.Attrs.Float("value_float", 0)})
	}
	if n.Attrs.Has("value_floats") {
		f := n.Attrs.Floats("value_floats")
		scalar(tensor.FP32, []int64{int64(len(f))}, append([]float32{}, f...))
	}
	if n.Attrs.Has("value_int") {
		scalar(tensor.Int64, nil, []int64{n.Attrs.Int("value_int", 0)})
	}
	if n.Attrs.Has("value_ints") {
		f := n.Attrs.Ints("value_ints")
		scalar(tensor.Int64, []int64{int64(len(f))}, append([]int64{}, f...))
	}
	if n.Attrs.Has("value_string") {
		scalar(tensor.Bytes, nil, [][]byte{[]byte(n.Attrs.String("value_string", ""))})
	}
	if n.Attrs.Has("value_strings") {
		s := n.Attrs.Strings("value_strings")
		b := make([][]byte, len(s))
		for i := range s {
			b[i] = []byte(s[i])
		}
		scalar(tensor.Bytes, []int64{int64(len(s))}, b)
	}
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if set != 1 || v == nil {
		return nil, fmt.Errorf("%w: Constant needs exactly one value attribute, has %d", ErrAttr, set)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		return out[0].CopyFrom(v)
	}, nil
}

func newReshape(n *Node) (Kernel, error) {
	allowZero := n.Attrs.Int("allowzero", 0) != 0
	if n.Version < 5 {
		return nil, fmt.Errorf("%w: Reshape-1", ErrUnsupported)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x, s := in[0], in[1]
		if x.Kind != KindTensor {
			return badInput("Reshape of %v", x)
		}
		if err := checkType("Reshape shape", s, tensor.Int64); err != nil {
			return err
		}
		want := s.Int64s()
		shape := tmp.Shape(len(want))
		infer, known := -1, 1
		for i, d := range want {
			switch {
			case d == 0 && !allowZero:
				if i >= len(x.Tensor.Shape) {
					return badInput("Reshape: 0 at %d copies a missing dimension of %v", i, x.Tensor.Shape)
				}
				d = x.Tensor.Shape[i]
			case d == -1:
				if infer >= 0 {
					return badInput("Reshape: two -1 in %v", want)
				}
				infer = i
				continue
			case d < 0:
				return badInput("Reshape: dimension %d in %v", d, want)
			}
			shape[i] = d
			known *= int(d)
		}
		total := x.Len()
		if infer >= 0 {
			if known == 0 || total%known != 0 {
				return badInput("Reshape of %v to %v", x.Tensor.Shape, want)
			}
			shape[infer] = int64(total / known)
			known *= total / known
		}
		if known != total {
			return badInput("Reshape of %v to %v", x.Tensor.Shape, want)
		}
		if err := out[0].Resize(x.Tensor.DType, shape); err != nil {
			return err
		}
		copyData(out[0].Tensor.Data, x.Tensor.Data)
		return nil
	}, nil
}

func newFlatten(n *Node) (Kernel, error) {
	axisAttr := n.Attrs.Int("axis", 1)
	return func(tmp *Scratch, in, out []*Value) error {
		x := in[0]
		if x.Kind != KindTensor {
			return badInput("Flatten of %v", x)
		}
		r := len(x.Tensor.Shape)
		axis := axisAttr
		if axis < 0 {
			axis += int64(r)
		}
		if axis < 0 || axis > int64(r) {
			return badInput("Flatten axis %d for rank %d", axisAttr, r)
		}
		shape := tmp.Shape(2)
		shape[0], shape[1] = int64(prod(x.Tensor.Shape[:axis])), int64(prod(x.Tensor.Shape[axis:]))
		if err := out[0].Resize(x.Tensor.DType, shape); err != nil {
			return err
		}
		copyData(out[0].Tensor.Data, x.Tensor.Data)
		return nil
	}, nil
}

func newConcat(n *Node) (Kernel, error) {
	if !n.Attrs.Has("axis") {
		return nil, fmt.Errorf("%w: Concat needs axis", ErrAttr)
	}
	axisAttr := n.Attrs.Int("axis", 0)
	return func(tmp *Scratch, in, out []*Value) error {
		if len(in) == 0 || in[0].Kind != KindTensor {
			return badInput("Concat of nothing")
		}
		first := in[0]
		r := len(first.Tensor.Shape)
		axis, err := axisIndex(axisAttr, r)
		if err != nil {
			return err
		}
		shape := tmp.Shape(r)
		copy(shape, first.Tensor.Shape)
		shape[axis] = 0
		for _, v := range in {
			if v.Kind != KindTensor || v.Tensor.DType != first.Tensor.DType || len(v.Tensor.Shape) != r {
				return badInput("Concat of %v and %v", first, v)
			}
			for i, d := range v.Tensor.Shape {
				if i != axis && d != first.Tensor.Shape[i] {
					return badInput("Concat of %v and %v on axis %d", first, v, axis)
				}
			}
			shape[axis] += v.Tensor.Shape[axis]
		}
		if err := out[0].Resize(first.Tensor.DType, shape); err != nil {
			return err
		}
		outer, inner := prod(shape[:axis]), prod(shape[axis+1:])
		rowOut := int(shape[axis]) * inner
		off := 0
		for _, v := range in {
			rowIn := int(v.Tensor.Shape[axis]) * inner
			for o := range outer {
				copyElems(out[0].Tensor.Data, o*rowOut+off, v.Tensor.Data, o*rowIn, rowIn)
			}
			off += rowIn
		}
		return nil
	}, nil
}

// copyElems copies n elements from src[so:] to dst[do:], two slices of the
// same type.
func copyElems(dst any, do int, src any, so, n int) {
	switch d := dst.(type) {
	case []float32:
		copy(d[do:do+n], src.([]float32)[so:so+n])
	case []float64:
		copy(d[do:do+n], src.([]float64)[so:so+n])
	case []int64:
		copy(d[do:do+n], src.([]int64)[so:so+n])
	case []int32:
		copy(d[do:do+n], src.([]int32)[so:so+n])
	case []bool:
		copy(d[do:do+n], src.([]bool)[so:so+n])
	case []uint8:
		copy(d[do:do+n], src.([]uint8)[so:so+n])
	case []int8:
		copy(d[do:do+n], src.([]int8)[so:so+n])
	case []uint16:
		copy(d[do:do+n], src.([]uint16)[so:so+n])
	case []int16:
		copy(d[do:do+n], src.([]int16)[so:so+n])
	case []uint32:
		copy(d[do:do+n], src.([]uint32)[so:so+n])
	case []uint64:
		copy(d[do:do+n], src.([]uint64)[so:so+n])
	case [][]byte:
		copy(d[do:do+n], src.([][]byte)[so:so+n])
	}
}

// newArgExt implements ArgMax (min false) and ArgMin.
func newArgExt(isMin bool) func(n *Node) (Kernel, error) {
	return func(n *Node) (Kernel, error) {
		axisAttr := n.Attrs.Int("axis", 0)
		keep := n.Attrs.Int("keepdims", 1) != 0
		last := n.Attrs.Int("select_last_index", 0) != 0
		return func(tmp *Scratch, in, out []*Value) error {
			x := in[0]
			if err := checkType(n.OpType, x, tensor.FP32, tensor.FP64, tensor.Int32, tensor.Int64, tensor.Int8, tensor.Uint8, tensor.Int16, tensor.Uint16, tensor.Uint32, tensor.Uint64, tensor.FP16); err != nil {
				return err
			}
			r := len(x.Tensor.Shape)
			axis, err := axisIndex(axisAttr, r)
			if err != nil {
				return err
			}
			shape := tmp.Shape(r)
			copy(shape, x.Tensor.Shape)
			outer, dim, inner := prod(shape[:axis]), int(shape[axis]), prod(shape[axis+1:])
			if keep {
				shape[axis] = 1
			} else {
				shape = append(shape[:axis], shape[axis+1:]...)
			}
			if dim == 0 {
				return badInput("%s over an empty axis", n.OpType)
			}
			if err := out[0].Resize(tensor.Int64, shape); err != nil {
				return err
			}
			o := out[0].Int64s()
			fp16 := x.Tensor.DType == tensor.FP16
			at := func(i int) float64 {
				if fp16 {
					return float64(tensor.Float16ToFloat32(x.Tensor.Data.([]uint16)[i]))
				}
				return float64At(x.Tensor.Data, i)
			}
			for a := range outer {
				for b := range inner {
					base := a*dim*inner + b
					best, bi := at(base), 0
					for j := 1; j < dim; j++ {
						v := at(base + j*inner)
						better := v > best
						if isMin {
							better = v < best
						}
						if better || (last && v == best) {
							best, bi = v, j
						}
					}
					o[a*inner+b] = int64(bi)
				}
			}
			return nil
		}, nil
	}
}

func newClip(n *Node) (Kernel, error) {
	attrMin := float64(n.Attrs.Float("min", float32(math.Inf(-1))))
	attrMax := float64(n.Attrs.Float("max", float32(math.Inf(1))))
	legacy := n.Version < 11
	return func(tmp *Scratch, in, out []*Value) error {
		x := in[0]
		if err := checkType("Clip", x, tensor.FP32, tensor.FP64, tensor.FP16, tensor.Int8, tensor.Int16, tensor.Int32, tensor.Int64, tensor.Uint8, tensor.Uint16, tensor.Uint32, tensor.Uint64); err != nil {
			return err
		}
		lo, hi := attrMin, attrMax
		if !legacy {
			lo, hi = math.Inf(-1), math.Inf(1)
			if v := Arg(in, 1); v.Kind == KindTensor {
				if v.Len() != 1 || v.Tensor.DType != x.Tensor.DType {
					return badInput("Clip min %v", v)
				}
				lo = scalarOf(v)
			}
			if v := Arg(in, 2); v.Kind == KindTensor {
				if v.Len() != 1 || v.Tensor.DType != x.Tensor.DType {
					return badInput("Clip max %v", v)
				}
				hi = scalarOf(v)
			}
		}
		if err := out[0].Resize(x.Tensor.DType, x.Tensor.Shape); err != nil {
			return err
		}
		switch d := x.Tensor.Data.(type) {
		case []float32:
			o := out[0].Float32s()
			l, h := float32(lo), float32(hi)
			for i, v := range d {
				if v < l {
					v = l
				}
				if v > h {
					v = h
				}
				o[i] = v
			}
			return nil
		case []int64:
			o := out[0].Int64s()
			for i, v := range d {
				f := float64(v)
				if f < lo {
					v = int64(lo)
				}
				if f > hi {
					v = int64(hi)
				}
				o[i] = v
			}
			return nil
		}
		for i := range x.Len() {
			var f float64
			if x.Tensor.DType == tensor.FP16 {
				f = float64(tensor.Float16ToFloat32(x.Tensor.Data.([]uint16)[i]))
			} else {
				f = float64At(x.Tensor.Data, i)
			}
			f = math.Min(math.Max(f, lo), hi)
			if math.IsNaN(float64At(x.Tensor.Data, i)) {
				f = math.NaN()
			}
			setFloat(out[0], i, f)
		}
		return nil
	}, nil
}

// scalarOf returns the single element of v as float64.
func scalarOf(v *Value) float64 {
	if v.Tensor.DType == tensor.FP16 {
		return float64(tensor.Float16ToFloat32(v.Tensor.Data.([]uint16)[0]))
	}
	return float64At(v.Tensor.Data, 0)
}
