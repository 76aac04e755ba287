package onnx

import (
	"fmt"
	"math"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// labelKeys looks keys of one type up: strings, integers or floats (NaN
// matching NaN).
type labelKeys struct {
	dt   tensor.DType
	strs map[string]int
	ints map[int64]int
	flts map[uint64]int
}

func floatKey(f float64) uint64 {
	if f != f {
		return math.Float64bits(math.NaN())
	}
	if f == 0 {
		return 0 // -0 == 0
	}
	return math.Float64bits(f)
}

func newLabelKeys(v *Value) (labelKeys, error) {
	k := labelKeys{dt: v.Tensor.DType}
	n := v.Len()
	switch d := v.Tensor.Data.(type) {
	case [][]byte:
		k.strs = make(map[string]int, n)
		for i := n - 1; i >= 0; i-- {
			k.strs[string(d[i])] = i
		}
	case []int64:
		k.ints = make(map[int64]int, n)
		for i := n - 1; i >= 0; i-- {
			k.ints[d[i]] = i
		}
	case []float32, []float64:
		k.flts = make(map[uint64]int, n)
		for i := n - 1; i >= 0; i-- {
			k.flts[floatKey(float64At(d, i))] = i
		}
	default:
		return k, fmt.Errorf("%w: keys of type %v", ErrUnsupported, v.Tensor.DType)
	}
	return k, nil
}

// find returns the index of element i of x among the keys, or -1.
func (k labelKeys) find(x *Value, i int) int {
	var j int
	ok := false
	switch d := x.Tensor.Data.(type) {
	case [][]byte:
		j, ok = k.strs[string(d[i])]
	case []int64:
		j, ok = k.ints[d[i]]
	case []float32, []float64:
		j, ok = k.flts[floatKey(float64At(d, i))]
	}
	if !ok {
		return -1
	}
	return j
}

// listValue makes a 1-D Value of the attribute list named by one of names
// (each with its type), or nil when none is set.
func listValue(n *Node, prefix string) (*Value, error) {
	var v *Value
	count := 0
	if s := n.Attrs.Strings(prefix + "_strings"); s != nil {
		b := make([][]byte, len(s))
		for i := range s {
			b[i] = []byte(s[i])
		}
		v, count = &Value{Kind: KindTensor, Tensor: tensor.Tensor{DType: tensor.Bytes, Shape: []int64{int64(len(b))}, Data: b}}, count+1
	}
	if s := n.Attrs.Ints(prefix + "_int64s"); s != nil {
		v, count = &Value{Kind: KindTensor, Tensor: tensor.Tensor{DType: tensor.Int64, Shape: []int64{int64(len(s))}, Data: s}}, count+1
	}
	if s := n.Attrs.Floats(prefix + "_floats"); s != nil {
		v, count = &Value{Kind: KindTensor, Tensor: tensor.Tensor{DType: tensor.FP32, Shape: []int64{int64(len(s))}, Data: s}}, count+1
	}
	if t := n.Attrs.Tensor(prefix + "_tensor"); t != nil {
		v, count = t, count+1
	}
	if count > 1 {
		return nil, fmt.Errorf("%w: LabelEncoder: several %s attributes", ErrAttr, prefix)
	}
	return v, nil
}

func scalarValue(dt tensor.DType, data any) *Value {
	return &Value{Kind: KindTensor, Tensor: tensor.Tensor{DType: dt, Shape: []int64{1}, Data: data}}
}

// newLabelEncoder implements LabelEncoder: version 1 maps strings to their
// index in classes_strings and back; later versions map keys_* to values_*
// (or keys_tensor to values_tensor), with a default for unknown keys.
func newLabelEncoder(n *Node) (Kernel, error) {
	var keys, values, def *Value
	var err error
	if n.Version < 2 {
		classes := n.Attrs.Strings("classes_strings")
		b := make([][]byte, len(classes))
		idx := make([]int64, len(classes))
		for i := range classes {
			b[i], idx[i] = []byte(classes[i]), int64(i)
		}
		strs := &Value{Kind: KindTensor, Tensor: tensor.Tensor{DType: tensor.Bytes, Shape: []int64{int64(len(b))}, Data: b}}
		ints := &Value{Kind: KindTensor, Tensor: tensor.Tensor{DType: tensor.Int64, Shape: []int64{int64(len(b))}, Data: idx}}
		defInt := scalarValue(tensor.Int64, []int64{n.Attrs.Int("default_int64", -1)})
		defStr := scalarValue(tensor.Bytes, [][]byte{[]byte(n.Attrs.String("default_string", "_Unused"))})
		if err := n.Attrs.Err(); err != nil {
			return nil, err
		}
		s2i, err1 := newLabelKeys(strs)
		i2s, err2 := newLabelKeys(ints)
		if err := firstErr(err1, err2); err != nil {
			return nil, err
		}
		return func(tmp *Scratch, in, out []*Value) error {
			x := in[0]
			switch x.Tensor.DType {
			case tensor.Bytes:
				return encodeLabels(out[0], x, s2i, ints, defInt)
			case tensor.Int64:
				return encodeLabels(out[0], x, i2s, strs, defStr)
			}
			return badInput("LabelEncoder of %v", x)
		}, nil
	}
	if keys, err = listValue(n, "keys"); err != nil {
		return nil, err
	}
	if values, err = listValue(n, "values"); err != nil {
		return nil, err
	}
	if keys == nil || values == nil || keys.Len() != values.Len() {
		return nil, fmt.Errorf("%w: LabelEncoder needs keys and values of the same length", ErrAttr)
	}
	def = n.Attrs.Tensor("default_tensor")
	if def == nil {
		switch values.Tensor.DType {
		case tensor.Bytes:
			def = scalarValue(tensor.Bytes, [][]byte{[]byte(n.Attrs.String("default_string", "_Unused"))})
		case tensor.Int64:
			def = scalarValue(tensor.Int64, []int64{n.Attrs.Int("default_int64", -1)})
		case tensor.FP32:
			def = scalarValue(tensor.FP32, []float32{n.Attrs.Float("default_float", float32(math.Copysign(0, -1)))})
		default:
			return nil, fmt.Errorf("%w: LabelEncoder values of type %v without default_tensor", ErrUnsupported, values.Tensor.DType)
		}
	}
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if def.Len() != 1 || def.Tensor.DType != values.Tensor.DType {
		return nil, fmt.Errorf("%w: LabelEncoder default %v for values %v", ErrAttr, def, values)
	}
	lk, err := newLabelKeys(keys)
	if err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x := in[0]
		if x.Kind != KindTensor || x.Tensor.DType != keys.Tensor.DType {
			return badInput("LabelEncoder of %v, want keys of type %v", x, keys.Tensor.DType)
		}
		return encodeLabels(out[0], x, lk, values, def)
	}, nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// encodeLabels writes into o, shaped like x, values[find(x[i])] or def.
func encodeLabels(o, x *Value, keys labelKeys, values, def *Value) error {
	if err := o.Resize(values.Tensor.DType, x.Tensor.Shape); err != nil {
		return err
	}
	for i := range x.Len() {
		if j := keys.find(x, i); j >= 0 {
			copyElems(o.Tensor.Data, i, values.Tensor.Data, j, 1)
		} else {
			copyElems(o.Tensor.Data, i, def.Tensor.Data, 0, 1)
		}
	}
	return nil
}

// newZipMap implements ZipMap: each row of a [N, C] float tensor becomes a
// map from the C class labels to the row's values.
func newZipMap(n *Node) (Kernel, error) {
	var keys tensor.Tensor
	if s := n.Attrs.Strings("classlabels_strings"); s != nil {
		b := make([][]byte, len(s))
		for i := range s {
			b[i] = []byte(s[i])
		}
		keys = tensor.Tensor{DType: tensor.Bytes, Shape: []int64{int64(len(b))}, Data: b}
	}
	if s := n.Attrs.Ints("classlabels_int64s"); s != nil {
		if keys.Data != nil {
			return nil, fmt.Errorf("%w: ZipMap with both label kinds", ErrAttr)
		}
		keys = tensor.Tensor{DType: tensor.Int64, Shape: []int64{int64(len(s))}, Data: s}
	}
	if keys.Data == nil {
		return nil, fmt.Errorf("%w: ZipMap without class labels", ErrAttr)
	}
	c := int(keys.Shape[0])
	return func(tmp *Scratch, in, out []*Value) error {
		x := in[0]
		if err := checkType("ZipMap X", x, tensor.FP32); err != nil {
			return err
		}
		nr := 1
		if len(x.Tensor.Shape) == 2 {
			nr = int(x.Tensor.Shape[0])
		}
		if x.Len() != nr*c || len(x.Tensor.Shape) > 2 {
			return badInput("ZipMap of %v with %d labels", x, c)
		}
		out[0].ResizeSeq(nr)
		shape := tmp.Shape(1)
		shape[0] = int64(c)
		d := x.Float32s()
		for r, m := range out[0].Seq {
			if err := m.Resize(tensor.FP32, shape); err != nil {
				return err
			}
			copy(m.Float32s(), d[r*c:r*c+c])
			m.Kind = KindMap
			m.Keys = keys
		}
		return nil
	}, nil
}

// newCastMap implements CastMap: a map from int64 keys to a [1, n] tensor,
// dense (values in key order) or sparse (value of key k at column k).
func newCastMap(n *Node) (Kernel, error) {
	var to tensor.DType
	switch s := n.Attrs.String("cast_to", "TO_FLOAT"); s {
	case "TO_FLOAT":
		to = tensor.FP32
	case "TO_STRING":
		to = tensor.Bytes
	case "TO_INT64":
		to = tensor.Int64
	default:
		return nil, fmt.Errorf("%w: CastMap cast_to %q", ErrAttr, s)
	}
	form := n.Attrs.String("map_form", "DENSE")
	if form != "DENSE" && form != "SPARSE" {
		return nil, fmt.Errorf("%w: CastMap map_form %q", ErrAttr, form)
	}
	maxMap := n.Attrs.Int("max_map", 1)
	if maxMap < 1 || maxMap > tensor.MaxElements {
		return nil, fmt.Errorf("%w: CastMap max_map %d", ErrAttr, maxMap)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		m := in[0]
		if m.Kind != KindMap || m.Keys.DType != tensor.Int64 {
			return badInput("CastMap of %v", m)
		}
		keys := m.Keys.Data.([]int64)
		order := sortedOrder(tmp.Int64s(len(keys)), keys)
		cols := int64(len(keys))
		if form == "SPARSE" {
			cols = maxMap
		}
		shape := tmp.Shape(2)
		shape[0], shape[1] = 1, cols
		o := out[0]
		if err := o.Resize(to, shape); err != nil {
			return err
		}
		o.Zero()
		if to == tensor.Bytes {
			for i := range o.Strings() {
				o.Strings()[i] = nil
			}
		}
		for pos, idx := range order {
			col := int64(pos)
			if form == "SPARSE" {
				col = keys[idx]
				if col < 0 || col >= cols {
					continue
				}
			}
			if err := castElem(o, int(col), &m.Tensor, int(idx)); err != nil {
				return err
			}
		}
		return nil
	}, nil
}

// sortedOrder writes into idx the indices of keys in increasing key order
// (insertion sort: maps are small, and it allocates nothing).
func sortedOrder(idx []int64, keys []int64) []int64 {
	for i := range idx {
		idx[i] = int64(i)
	}
	for i := 1; i < len(idx); i++ {
		for j := i; j > 0 && keys[idx[j]] < keys[idx[j-1]]; j-- {
			idx[j], idx[j-1] = idx[j-1], idx[j]
		}
	}
	return idx
}

// castElem converts element j of t into element i of o.
func castElem(o *Value, i int, t *tensor.Tensor, j int) error {
	switch o.Tensor.DType {
	case tensor.Bytes:
		if s, ok := t.Data.([][]byte); ok {
			o.Strings()[i] = s[j]
			return nil
		}
		tmp := Value{Kind: KindTensor, Tensor: *t}
		o.Strings()[i] = formatElem(&tmp, j)
		return nil
	default:
		if s, ok := t.Data.([][]byte); ok {
			var f float64
			if _, err := fmt.Sscan(string(s[j]), &f); err != nil {
				return badInput("CastMap of %q to a number", s[j])
			}
			setFloat(o, i, f)
			return nil
		}
		setFloat(o, i, float64At(t.Data, j))
		return nil
	}
}

// newDictVectorizer implements DictVectorizer: a map becomes a [1, V] row
// holding the value of each vocabulary entry (0 when absent).
func newDictVectorizer(n *Node) (Kernel, error) {
	strs := n.Attrs.Strings("string_vocabulary")
	ints := n.Attrs.Ints("int64_vocabulary")
	if (strs == nil) == (ints == nil) {
		return nil, fmt.Errorf("%w: DictVectorizer needs exactly one vocabulary", ErrAttr)
	}
	var vocab *Value
	if strs != nil {
		b := make([][]byte, len(strs))
		for i := range strs {
			b[i] = []byte(strs[i])
		}
		vocab = &Value{Kind: KindTensor, Tensor: tensor.Tensor{DType: tensor.Bytes, Shape: []int64{int64(len(b))}, Data: b}}
	} else {
		vocab = &Value{Kind: KindTensor, Tensor: tensor.Tensor{DType: tensor.Int64, Shape: []int64{int64(len(ints))}, Data: ints}}
	}
	lk, err := newLabelKeys(vocab)
	if err != nil {
		return nil, err
	}
	v := vocab.Len()
	return func(tmp *Scratch, in, out []*Value) error {
		m := in[0]
		if m.Kind != KindMap || m.Keys.DType != vocab.Tensor.DType {
			return badInput("DictVectorizer of %v, want keys of type %v", m, vocab.Tensor.DType)
		}
		shape := tmp.Shape(2)
		shape[0], shape[1] = 1, int64(v)
		o := out[0]
		if err := o.Resize(m.Tensor.DType, shape); err != nil {
			return err
		}
		o.Zero()
		keys := Value{Kind: KindTensor, Tensor: m.Keys}
		for i := range keys.Len() {
			if j := lk.find(&keys, i); j >= 0 {
				copyElems(o.Tensor.Data, j, m.Tensor.Data, i, 1)
			}
		}
		return nil
	}, nil
}
