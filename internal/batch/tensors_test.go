package batch

import (
	"errors"
	"reflect"
	"testing"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// TestConcatSplit joins tensors of every datatype and splits them back:
// the parts must equal the originals exactly.
func TestConcatSplit(t *testing.T) {
	for _, dt := range []tensor.DType{tensor.Bool, tensor.Uint8, tensor.Uint16, tensor.Uint32, tensor.Uint64,
		tensor.Int8, tensor.Int16, tensor.Int32, tensor.Int64, tensor.FP16, tensor.FP32, tensor.FP64, tensor.Bytes} {
		t.Run(dt.String(), func(t *testing.T) {
			var parts []*tensor.Tensor
			var rows []int
			for i, n := range []int{1, 3, 2} {
				p, err := tensor.New("x", dt, []int64{int64(n), 2})
				if err != nil {
					t.Fatal(err)
				}
				fill(p, i)
				parts = append(parts, p)
				rows = append(rows, n)
			}
			joined, err := Concat("x", parts)
			if err != nil {
				t.Fatal(err)
			}
			if want := []int64{6, 2}; !reflect.DeepEqual(joined.Shape, want) {
				t.Fatalf("Concat shape %v, want %v", joined.Shape, want)
			}
			back, err := Split(joined, rows)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, parts) {
				t.Errorf("Split(Concat(%v)) = %v", parts, back)
			}
		})
	}
}

// fill gives every element a value that depends on seed and its index.
func fill(t *tensor.Tensor, seed int) {
	switch d := t.Data.(type) {
	case []bool:
		for i := range d {
			d[i] = (i+seed)%2 == 0
		}
	case [][]byte:
		for i := range d {
			d[i] = []byte{byte(seed), byte(i)}
		}
	default:
		v := make([]float64, t.Len())
		for i := range v {
			v[i] = float64(seed*10 + i)
		}
		p, err := tensor.FromFloat64s(t.Name, t.DType, t.Shape, v)
		if err != nil {
			panic(err)
		}
		t.Data = p.Data
	}
}

func TestConcatSplitErrors(t *testing.T) {
	f := func(shape ...int64) *tensor.Tensor {
		t, err := tensor.New("x", tensor.FP32, shape)
		if err != nil {
			panic(err)
		}
		return t
	}
	i32, _ := tensor.New("x", tensor.Int32, []int64{1, 2})
	for _, tc := range []struct {
		name string
		ts   []*tensor.Tensor
	}{
		{"none", nil},
		{"scalar", []*tensor.Tensor{f()}},
		{"widths", []*tensor.Tensor{f(1, 2), f(1, 3)}},
		{"ranks", []*tensor.Tensor{f(1, 2), f(2)}},
		{"dtypes", []*tensor.Tensor{f(1, 2), i32}},
	} {
		if _, err := Concat("x", tc.ts); !errors.Is(err, ErrShape) {
			t.Errorf("Concat(%s) = %v, want ErrShape", tc.name, err)
		}
	}
	for _, tc := range []struct {
		name string
		t    *tensor.Tensor
		rows []int
	}{
		{"scalar", f(), []int{1}},
		{"too few", f(3, 2), []int{1, 1}},
		{"too many", f(3, 2), []int{2, 2}},
		{"negative", f(3, 2), []int{4, -1}},
	} {
		if _, err := Split(tc.t, tc.rows); !errors.Is(err, ErrShape) {
			t.Errorf("Split(%s, %v) = %v, want ErrShape", tc.name, tc.rows, err)
		}
	}
}

// TestSplitViews: appending to a part must not overwrite the next.
func TestSplitViews(t *testing.T) {
	x := &tensor.Tensor{Name: "x", DType: tensor.FP32, Shape: []int64{2}, Data: []float32{1, 2}}
	parts, err := Split(x, []int{1, 1})
	if err != nil {
		t.Fatal(err)
	}
	_ = append(parts[0].Data.([]float32), 9)
	if got := parts[1].Data.([]float32)[0]; got != 2 {
		t.Errorf("second part = %v after appending to the first, want 2", got)
	}
}

func BenchmarkConcat(b *testing.B) {
	parts := make([]*tensor.Tensor, 64)
	for i := range parts {
		parts[i], _ = tensor.New("x", tensor.FP32, []int64{1, 32})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Concat("x", parts); err != nil {
			b.Fatal(err)
		}
	}
}
