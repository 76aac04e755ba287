package onnx

import (
	"bytes"
	"regexp"
	"strings"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// stringOps are the operators over ONNX STRING tensors (StringNormalizer,
// StringSplit, StringConcat, RegexFullMatch) and BitCast. They allocate
// per run: strings are built fresh.
func stringOps() []Op {
	return []Op{
		{Domain: DomainONNX, Type: "StringNormalizer", Since: 10, New: newStringNormalizer},
		{Domain: DomainONNX, Type: "StringSplit", Since: 20, New: newStringSplit},
		{Domain: DomainONNX, Type: "StringConcat", Since: 20, New: newStringConcat},
		{Domain: DomainONNX, Type: "RegexFullMatch", Since: 20, New: newRegexFullMatch},
		{Domain: DomainONNX, Type: "BitCast", Since: 26, New: newBitCast},
	}
}

// newStringNormalizer builds StringNormalizer: stopwords are removed
// (optionally ignoring case), then the case is changed; when nothing is
// left the output holds one empty string.
func newStringNormalizer(n *Node) (Kernel, error) {
	action := n.Attrs.String("case_change_action", "NONE")
	sensitive := n.Attrs.Int("is_case_sensitive", 0) != 0
	stop := n.Attrs.Strings("stopwords")
	n.Attrs.String("locale", "")
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if action != "NONE" && action != "LOWER" && action != "UPPER" {
		return nil, attrError("StringNormalizer case_change_action %q", action)
	}
	stopSet := map[string]bool{}
	for _, s := range stop {
		if !sensitive {
			s = strings.ToLower(s)
		}
		stopSet[s] = true
	}
	return func(tmp *Scratch, in, out []*Value) error {
		if err := checkType("StringNormalizer", in[0], tensor.Bytes); err != nil {
			return err
		}
		x := &in[0].Tensor
		if len(x.Shape) > 2 || (len(x.Shape) == 2 && x.Shape[0] != 1) {
			return badInput("StringNormalizer of %v", x.Shape)
		}
		var kept [][]byte
		for _, s := range in[0].Strings() {
			key := string(s)
			if !sensitive {
				key = strings.ToLower(key)
			}
			if stopSet[key] {
				continue
			}
			switch action {
			case "LOWER":
				s = bytes.ToLower(s)
			case "UPPER":
				s = bytes.ToUpper(s)
			}
			kept = append(kept, s)
		}
		if len(kept) == 0 {
			kept = [][]byte{{}}
		}
		shape := tmp.Shape(len(x.Shape))
		copy(shape, x.Shape)
		shape[len(shape)-1] = int64(len(kept))
		if err := out[0].Resize(tensor.Bytes, shape); err != nil {
			return err
		}
		copy(out[0].Strings(), kept)
		return nil
	}, nil
}

// newStringSplit builds StringSplit: Y holds each string's parts padded
// with empty strings to the longest split (a new last dimension), Z the
// number of parts. Without a delimiter (or an empty one) runs of
// whitespace separate parts and leading and trailing ones are ignored.
func newStringSplit(n *Node) (Kernel, error) {
	delim := n.Attrs.String("delimiter", "")
	maxSplit := int(n.Attrs.Int("maxsplit", -1))
	hasMax := n.Attrs.Has("maxsplit")
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		if err := checkType("StringSplit", in[0], tensor.Bytes); err != nil {
			return err
		}
		xs := in[0].Strings()
		parts := make([][]string, len(xs))
		width := 0
		for i, s := range xs {
			var p []string
			switch {
			case delim == "" && hasMax:
				p = splitFieldsN(string(s), maxSplit)
			case delim == "":
				p = strings.Fields(string(s))
			case hasMax:
				p = strings.SplitN(string(s), delim, maxSplit+1)
			default:
				p = strings.Split(string(s), delim)
			}
			parts[i] = p
			width = max(width, len(p))
		}
		x := &in[0].Tensor
		shape := append(append(make([]int64, 0, len(x.Shape)+1), x.Shape...), int64(width))
		if err := out[0].Resize(tensor.Bytes, shape); err != nil {
			return err
		}
		y := out[0].Strings()
		for i, p := range parts {
			for j := range width {
				y[i*width+j] = nil
				if j < len(p) {
					y[i*width+j] = []byte(p[j])
				} else {
					y[i*width+j] = []byte{}
				}
			}
		}
		if len(out) > 1 && out[1] != nil {
			if err := out[1].Resize(tensor.Int64, x.Shape); err != nil {
				return err
			}
			z := out[1].Int64s()
			for i, p := range parts {
				z[i] = int64(len(p))
			}
		}
		return nil
	}, nil
}

// splitFieldsN splits s at runs of whitespace into at most n+1 fields,
// as Python's str.split(None, n).
func splitFieldsN(s string, n int) []string {
	var out []string
	s = strings.TrimLeft(s, " \t\n\r\v\f")
	for s != "" {
		if len(out) == n {
			out = append(out, s)
			return out
		}
		i := strings.IndexAny(s, " \t\n\r\v\f")
		if i < 0 {
			out = append(out, s)
			return out
		}
		out = append(out, s[:i])
		s = strings.TrimLeft(s[i:], " \t\n\r\v\f")
	}
	return out
}

func newStringConcat(n *Node) (Kernel, error) {
	return func(tmp *Scratch, in, out []*Value) error {
		for i := range 2 {
			if err := checkType("StringConcat", in[i], tensor.Bytes); err != nil {
				return err
			}
		}
		a, b := &in[0].Tensor, &in[1].Tensor
		shape, err := broadcastAll(tmp.Shape(MaxRank), a.Shape, b.Shape)
		if err != nil {
			return err
		}
		if err := out[0].Resize(tensor.Bytes, shape); err != nil {
			return err
		}
		shape = out[0].Tensor.Shape
		sa, sb := bcastStrides(a.Shape, shape), bcastStrides(b.Shape, shape)
		x, y, o := a.Data.([][]byte), b.Data.([][]byte), out[0].Strings()
		r := len(shape)
		ka, kb := 0, 0
		if r > 0 {
			ka, kb = sa[r-1], sb[r-1]
		}
		walk3(shape, &sa, &sb, nil, func(oo, ao, bo, _, n int) {
			for j := range n {
				p, q := x[ao+j*ka], y[bo+j*kb]
				s := make([]byte, 0, len(p)+len(q))
				o[oo+j] = append(append(s, p...), q...)
			}
		})
		return nil
	}, nil
}

func newRegexFullMatch(n *Node) (Kernel, error) {
	pattern := n.Attrs.String("pattern", "")
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	re, err := regexp.Compile(`^(?:` + pattern + `)$`)
	if err != nil {
		return nil, attrError("RegexFullMatch pattern %q: %v", pattern, err)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		if err := checkType("RegexFullMatch", in[0], tensor.Bytes); err != nil {
			return err
		}
		if err := out[0].Resize(tensor.Bool, in[0].Tensor.Shape); err != nil {
			return err
		}
		o := out[0].Bools()
		for i, s := range in[0].Strings() {
			o[i] = re.Match(s)
		}
		return nil
	}, nil
}

// newBitCast builds BitCast between element types of the same size: the
// bytes of each element are reinterpreted.
func newBitCast(n *Node) (Kernel, error) {
	to, ok := onnxDType(n.Attrs.Int("to", 0))
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if !ok || to == tensor.Bytes {
		return nil, unsupported("BitCast to %d", n.Attrs.Int("to", 0))
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x, err := tensorValue("BitCast", in[0])
		if err != nil {
			return err
		}
		if x.DType == tensor.Bytes || x.DType.Size() != to.Size() {
			return badInput("BitCast of %v to %v", x.DType, to)
		}
		buf, _ := tmp.Any.([]byte)
		buf = x.AppendRaw(buf[:0])
		tmp.Any = buf
		t, err := tensor.FromRaw("", to, x.Shape, buf)
		if err != nil {
			return badInput("BitCast: %v", err)
		}
		if err := out[0].Resize(to, x.Shape); err != nil {
			return err
		}
		copyData(out[0].Tensor.Data, t.Data)
		return nil
	}, nil
}
