package onnx

import (
	"encoding/binary"
	"fmt"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// textOps are the text-feature operators not in ops_shape_string.go:
// TfIdfVectorizer.
func textOps() []Op {
	return []Op{
		{Domain: DomainONNX, Type: "TfIdfVectorizer", Since: 9, New: newTfIdfVectorizer},
	}
}

// tfidfMode is TfIdfVectorizer's mode attribute.
type tfidfMode uint8

const (
	modeTF tfidfMode = iota
	modeIDF
	modeTFIDF
)

// newTfIdfVectorizer counts the n-grams of a pool in each row of a 1-D or
// 2-D INT32, INT64 or STRING input, as onnxruntime does: for every skip
// distance 1..max_skip_count+1 and every start position, the n-grams of
// lengths min_gram_length..max_gram_length whose items are that distance
// apart; unigrams are counted once, not once per skip distance. Output i
// is the count (TF), an indicator times weights[i] (IDF) or the count
// times weights[i] (TFIDF) of the n-grams that ngram_indexes maps to i.
func newTfIdfVectorizer(n *Node) (Kernel, error) {
	minGram := n.Attrs.Int("min_gram_length", 0)
	maxGram := n.Attrs.Int("max_gram_length", 0)
	maxSkip := n.Attrs.Int("max_skip_count", 0)
	modeS := n.Attrs.String("mode", "")
	counts := n.Attrs.Ints("ngram_counts")
	indexes := n.Attrs.Ints("ngram_indexes")
	poolInts := n.Attrs.Ints("pool_int64s")
	poolStrs := n.Attrs.Strings("pool_strings")
	weights := n.Attrs.Floats("weights")
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	var mode tfidfMode
	switch modeS {
	case "TF":
		mode = modeTF
	case "IDF":
		mode = modeIDF
	case "TFIDF":
		mode = modeTFIDF
	default:
		return nil, fmt.Errorf("%w: TfIdfVectorizer mode %q, want TF, IDF or TFIDF", ErrAttr, modeS)
	}
	if minGram < 1 || maxGram < minGram || maxSkip < 0 || int(maxGram) > len(counts) {
		return nil, fmt.Errorf("%w: TfIdfVectorizer gram lengths [%d, %d], max_skip_count %d with %d ngram_counts",
			ErrAttr, minGram, maxGram, maxSkip, len(counts))
	}
	isStr := len(poolStrs) > 0
	poolLen := len(poolInts)
	if isStr {
		if poolLen > 0 {
			return nil, fmt.Errorf("%w: TfIdfVectorizer has both pool_int64s and pool_strings", ErrAttr)
		}
		poolLen = len(poolStrs)
	}
	// The pool holds the 1-grams from counts[0], the 2-grams from
	// counts[1], ...; n-gram number k (over all lengths) maps to output
	// indexes[k].
	pool := map[string]int{}
	var key []byte
	ordinal := 0
	size := 0
	for g := range counts {
		lo, hi := int(counts[g]), poolLen
		if g+1 < len(counts) {
			hi = int(counts[g+1])
		}
		if lo < 0 || hi < lo || hi > poolLen || (hi-lo)%(g+1) != 0 {
			return nil, fmt.Errorf("%w: TfIdfVectorizer ngram_counts %v do not split a pool of %d into n-grams", ErrAttr, counts, poolLen)
		}
		for s := lo; s < hi; s += g + 1 {
			key = key[:0]
			for j := s; j < s+g+1; j++ {
				if isStr {
					key = appendStrKey(key, []byte(poolStrs[j]))
				} else {
					key = binary.LittleEndian.AppendUint64(key, uint64(poolInts[j]))
				}
			}
			if ordinal >= len(indexes) {
				return nil, fmt.Errorf("%w: TfIdfVectorizer has %d ngram_indexes for more n-grams", ErrAttr, len(indexes))
			}
			idx := indexes[ordinal]
			if idx < 0 || idx > 1<<24 {
				return nil, fmt.Errorf("%w: TfIdfVectorizer ngram index %d", ErrAttr, idx)
			}
			pool[string(key)] = int(idx)
			size = max(size, int(idx)+1)
			ordinal++
		}
	}
	if ordinal != len(indexes) {
		return nil, fmt.Errorf("%w: TfIdfVectorizer has %d n-grams and %d ngram_indexes", ErrAttr, ordinal, len(indexes))
	}
	if weights != nil && len(weights) < size {
		return nil, fmt.Errorf("%w: TfIdfVectorizer has %d weights for %d outputs", ErrAttr, len(weights), size)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x := in[0]
		if isStr {
			if err := checkType("TfIdfVectorizer", x, tensor.Bytes); err != nil {
				return err
			}
		} else if err := checkType("TfIdfVectorizer", x, tensor.Int32, tensor.Int64); err != nil {
			return err
		}
		shape := x.Tensor.Shape
		rows, width := 1, 0
		os := tmp.Shape(len(shape))
		switch len(shape) {
		case 1:
			width = int(shape[0])
			os[0] = int64(size)
		case 2:
			rows, width = int(shape[0]), int(shape[1])
			os[0], os[1] = shape[0], int64(size)
		default:
			return badInput("TfIdfVectorizer: input of shape %v, want 1-D or 2-D", shape)
		}
		if err := out[0].Resize(tensor.FP32, os); err != nil {
			return err
		}
		y := out[0].Float32s()
		clear(y)
		keyBuf, _ := tmp.Any.(*[]byte)
		if keyBuf == nil {
			keyBuf = new([]byte)
			tmp.Any = keyBuf
		}
		buf := *keyBuf
		for r := range rows {
			freq := y[r*size : (r+1)*size]
			for dist := 1; dist <= int(maxSkip)+1; dist++ {
				first := int(minGram)
				if dist > 1 {
					first = max(first, 2) // unigrams were counted at distance 1
				}
				if first > int(maxGram) {
					break
				}
				for start := range width {
					buf = buf[:0]
					for g, item := 1, start; g <= int(maxGram) && item < width; g, item = g+1, item+dist {
						buf = appendItemKey(buf, x, r*width+item)
						if g < first {
							continue
						}
						if idx, ok := pool[string(buf)]; ok {
							freq[idx]++
						}
					}
				}
			}
			for i, f := range freq {
				switch {
				case mode == modeIDF && f > 0:
					freq[i] = 1
					if weights != nil {
						freq[i] = weights[i]
					}
				case mode == modeTFIDF && weights != nil:
					freq[i] = f * weights[i]
				}
			}
		}
		*keyBuf = buf
		return nil
	}, nil
}

// appendStrKey appends a length-prefixed string to a pool key.
func appendStrKey(key, s []byte) []byte {
	key = binary.LittleEndian.AppendUint32(key, uint32(len(s)))
	return append(key, s...)
}

// appendItemKey appends element i of x to a pool key, encoded as the pool
// encodes its items.
func appendItemKey(key []byte, x *Value, i int) []byte {
	switch d := x.Tensor.Data.(type) {
	case []int64:
		return binary.LittleEndian.AppendUint64(key, uint64(d[i]))
	case []int32:
		return binary.LittleEndian.AppendUint64(key, uint64(int64(d[i])))
	case [][]byte:
		return appendStrKey(key, d[i])
	}
	return key
}
