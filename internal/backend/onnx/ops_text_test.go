package onnx

import (
	"errors"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-ml/shoal/internal/backend/onnx/onnxpb"
	"github.com/shoal-ml/shoal/internal/tensor"
)

func tfidfAttrs(mode string, minGram, maxGram, skip int64, counts, indexes []int64, pool []string, weights []float32) *Attrs {
	str, strs, floats := onnxpb.AttributeProto_STRING, onnxpb.AttributeProto_STRINGS, onnxpb.AttributeProto_FLOATS
	var bs [][]byte
	for _, s := range pool {
		bs = append(bs, []byte(s))
	}
	attrs := []*onnxpb.AttributeProto{
		{Name: proto.String("mode"), Type: &str, S: []byte(mode)},
		sgIntAttr("min_gram_length", minGram), sgIntAttr("max_gram_length", maxGram), sgIntAttr("max_skip_count", skip),
		sgIntsAttr("ngram_counts", counts...), sgIntsAttr("ngram_indexes", indexes...),
		{Name: proto.String("pool_strings"), Type: &strs, Strings: bs},
	}
	if weights != nil {
		attrs = append(attrs, &onnxpb.AttributeProto{Name: proto.String("weights"), Type: &floats, Floats: weights})
	}
	return NewAttrs(attrs)
}

func TestTfIdfVectorizer(t *testing.T) {
	// Pool: unigrams "a" -> 0, "b" -> 1; bigram ("a", "b") -> 2.
	words := func(ws ...string) *Value {
		d := make([][]byte, len(ws))
		for i, w := range ws {
			d[i] = []byte(w)
		}
		return &Value{Kind: KindTensor, Tensor: tensor.Tensor{DType: tensor.Bytes, Shape: []int64{1, int64(len(ws))}, Data: d}}
	}
	pool := []string{"a", "b", "a", "b"}
	tests := []struct {
		name    string
		mode    string
		minG    int64
		skip    int64
		weights []float32
		in      *Value
		want    []float32
	}{
		{"tf uni and bigrams", "TF", 1, 0, nil, words("a", "b", "a", "b"), []float32{2, 2, 2}},
		{"tf bigrams only", "TF", 2, 0, nil, words("a", "b", "a", "b"), []float32{0, 0, 2}},
		// Skips up to 2 (distances 1 to 3): a0-b2 counts, a0-b5 (distance
		// 5) does not.
		{"tf skip", "TF", 2, 2, nil, words("a", "x", "b", "x", "x", "b"), []float32{0, 0, 1}},
		{"tf skip far enough", "TF", 2, 4, nil, words("a", "x", "b", "x", "x", "b"), []float32{0, 0, 2}},
		{"idf", "IDF", 1, 0, []float32{0.5, 2, 3}, words("a", "a", "c"), []float32{0.5, 0, 0}},
		{"tfidf", "TFIDF", 1, 0, []float32{0.5, 2, 3}, words("a", "b", "a"), []float32{1, 2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runOp(t, "TfIdfVectorizer", 9, tfidfAttrs(tt.mode, tt.minG, 2, tt.skip, []int64{0, 2}, []int64{0, 1, 2}, pool, tt.weights), tt.in)
			if err != nil {
				t.Fatalf("TfIdfVectorizer: %v", err)
			}
			if got := out.Float32s(); !reflect.DeepEqual(got, tt.want) || !reflect.DeepEqual(out.Tensor.Shape, []int64{1, 3}) {
				t.Errorf("TfIdfVectorizer = %v %v, want [1 3] %v", out.Tensor.Shape, got, tt.want)
			}
		})
	}
}

func TestTfIdfVectorizerRejects(t *testing.T) {
	pool := []string{"a", "b", "a", "b"}
	for _, tt := range []struct {
		name  string
		attrs *Attrs
	}{
		{"bad mode", tfidfAttrs("BM25", 1, 2, 0, []int64{0, 2}, []int64{0, 1, 2}, pool, nil)},
		{"counts past the pool", tfidfAttrs("TF", 1, 2, 0, []int64{0, 5}, []int64{0, 1, 2}, pool, nil)},
		{"too few indexes", tfidfAttrs("TF", 1, 2, 0, []int64{0, 2}, []int64{0, 1}, pool, nil)},
		{"max gram above counts", tfidfAttrs("TF", 1, 3, 0, []int64{0, 2}, []int64{0, 1, 2}, pool, nil)},
		{"too few weights", tfidfAttrs("TFIDF", 1, 2, 0, []int64{0, 2}, []int64{0, 1, 2}, pool, []float32{1})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runOp(t, "TfIdfVectorizer", 9, tt.attrs, sgF32([]int64{1}, 1))
			if !errors.Is(err, ErrAttr) {
				t.Errorf("TfIdfVectorizer(%s) error = %v, want ErrAttr", tt.name, err)
			}
		})
	}
	_, err := runOp(t, "TfIdfVectorizer", 9, tfidfAttrs("TF", 1, 2, 0, []int64{0, 2}, []int64{0, 1, 2}, pool, nil), sgF32([]int64{1}, 1))
	if !errors.Is(err, ErrInvalidInput) {
		t.Errorf("TfIdfVectorizer(float input with a string pool) error = %v, want ErrInvalidInput", err)
	}
}
