package onnx

import (
	"reflect"
	"testing"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// tv returns a tensor Value of type dt holding data (a typed slice).
func tv(dt tensor.DType, shape []int64, data any) *Value {
	return &Value{Kind: KindTensor, Tensor: tensor.Tensor{DType: dt, Shape: shape, Data: data}}
}

// intAttrs returns Attrs holding INT attributes.
func intAttrs(kv map[string]int64) *Attrs {
	a := NewAttrs(nil)
	for k, v := range kv {
		a.m[k] = intAttr(k, v)
	}
	return a
}

func TestMathOps(t *testing.T) {
	tests := []struct {
		name    string
		op      string
		version int64
		attrs   *Attrs
		in      []*Value
		want    *Value
	}{
		{"mod int sign of divisor", "Mod", 13, nil,
			[]*Value{tv(tensor.Int32, []int64{4}, []int32{-7, 7, -7, 7}), tv(tensor.Int32, []int64{4}, []int32{3, -3, -3, 3})},
			tv(tensor.Int32, []int64{4}, []int32{2, -2, -1, 1})},
		{"fmod float sign of dividend", "Mod", 13, intAttrs(map[string]int64{"fmod": 1}),
			[]*Value{f32([]int64{2}, -7, 7), f32(nil, 3)},
			f32([]int64{2}, -1, 1)},
		{"max broadcasts three inputs", "Max", 13, nil,
			[]*Value{f32([]int64{3}, 1, 5, 2), f32(nil, 3), f32([]int64{2, 1}, 0, 4)},
			f32([]int64{2, 3}, 3, 5, 3, 4, 5, 4)},
		{"mean", "Mean", 13, nil,
			[]*Value{f32([]int64{2}, 1, 2), f32([]int64{2}, 3, 6)},
			f32([]int64{2}, 2, 4)},
		{"pow int base float exponent", "Pow", 15, nil,
			[]*Value{tv(tensor.Int64, []int64{3}, []int64{1, 2, 3}), f32(nil, 2)},
			tv(tensor.Int64, []int64{3}, []int64{1, 4, 9})},
		{"equal strings", "Equal", 19, nil,
			[]*Value{tv(tensor.Bytes, []int64{2}, [][]byte{[]byte("a"), []byte("b")}), tv(tensor.Bytes, nil, [][]byte{[]byte("b")})},
			tv(tensor.Bool, []int64{2}, []bool{false, true})},
		{"less uint8", "Less", 13, nil,
			[]*Value{tv(tensor.Uint8, []int64{2}, []uint8{1, 200}), tv(tensor.Uint8, []int64{2}, []uint8{100, 100})},
			tv(tensor.Bool, []int64{2}, []bool{true, false})},
		{"xor", "Xor", 7, nil,
			[]*Value{tv(tensor.Bool, []int64{2}, []bool{true, true}), tv(tensor.Bool, []int64{2}, []bool{true, false})},
			tv(tensor.Bool, []int64{2}, []bool{false, true})},
		{"round half to even", "Round", 11, nil,
			[]*Value{f32([]int64{4}, 0.5, 1.5, 2.5, -0.5)},
			f32([]int64{4}, 0, 2, 2, 0)},
		{"sign int", "Sign", 13, nil,
			[]*Value{tv(tensor.Int8, []int64{3}, []int8{-4, 0, 9})},
			tv(tensor.Int8, []int64{3}, []int8{-1, 0, 1})},
		{"cast like int to float", "CastLike", 21, nil,
			[]*Value{tv(tensor.Int32, []int64{2}, []int32{1, -2}), f32(nil, 0)},
			f32([]int64{2}, 1, -2)},
		{"quantize per axis int8 saturates", "QuantizeLinear", 21, attrs(intAttr("axis", 0)),
			[]*Value{f32([]int64{2, 2}, 1, 2.5, -300, 3), f32([]int64{2}, 1, 0.5), tv(tensor.Int8, []int64{2}, []int8{0, 1})},
			tv(tensor.Int8, []int64{2, 2}, []int8{1, 2, -128, 7})},
		{"dequantize uint8", "DequantizeLinear", 21, nil,
			[]*Value{tv(tensor.Uint8, []int64{2}, []uint8{10, 0}), f32(nil, 0.5), tv(tensor.Uint8, nil, []uint8{2})},
			f32([]int64{2}, 4, -1)},
		{"matmul integer zero points", "MatMulInteger", 10, nil,
			[]*Value{tv(tensor.Uint8, []int64{1, 2}, []uint8{3, 4}), tv(tensor.Uint8, []int64{2, 1}, []uint8{5, 6}),
				tv(tensor.Uint8, nil, []uint8{1}), tv(tensor.Uint8, nil, []uint8{5})},
			tv(tensor.Int32, []int64{1, 1}, []int32{3})},
		{"dft of an impulse", "DFT", 20, nil,
			[]*Value{f32([]int64{1, 2, 1}, 1, 0), new(Value), i64(nil, 1)},
			f32([]int64{1, 2, 2}, 1, 0, 1, 0)},
		{"bitwise not uint16", "BitwiseNot", 18, nil,
			[]*Value{tv(tensor.Uint16, []int64{1}, []uint16{1})},
			tv(tensor.Uint16, []int64{1}, []uint16{0xfffe})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runOp(t, tt.op, tt.version, tt.attrs, tt.in...)
			if err != nil {
				t.Fatalf("%s: %v", tt.op, err)
			}
			if got.Tensor.DType != tt.want.Tensor.DType || !reflect.DeepEqual(got.Tensor.Shape, tt.want.Tensor.Shape) ||
				!reflect.DeepEqual(got.Tensor.Data, tt.want.Tensor.Data) {
				t.Errorf("%s = %v %v, want %v %v", tt.op, got, got.Tensor.Data, tt.want, tt.want.Tensor.Data)
			}
		})
	}
}

func TestMathSteadyStateAllocs(t *testing.T) {
	for _, op := range []string{"Max", "Less", "Pow", "Floor"} {
		in := []*Value{f32([]int64{2, 3}, 1, 2, 3, 4, 5, 6), f32([]int64{3}, 1, 2, 3)}
		if op == "Floor" {
			in = in[:1]
		}
		o, _ := DefaultOps().Lookup(DomainONNX, op, 13)
		k, err := o.New(&Node{Attrs: NewAttrs(nil)})
		if err != nil {
			t.Fatal(err)
		}
		tmp, out := new(Scratch), []*Value{new(Value)}
		allocs := steadyAllocs(50, func() {
			if err := k(tmp, in, out); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s allocates %v times per run, want 0", op, allocs)
		}
	}
}

func BenchmarkMathLess(b *testing.B) {
	o, _ := DefaultOps().Lookup(DomainONNX, "Less", 13)
	k, _ := o.New(&Node{Attrs: NewAttrs(nil)})
	x := f32([]int64{64, 256}, make([]float32, 64*256)...)
	y := f32([]int64{256}, make([]float32, 256)...)
	tmp, in, out := new(Scratch), []*Value{x, y}, []*Value{new(Value)}
	b.ReportAllocs()
	for b.Loop() {
		if err := k(tmp, in, out); err != nil {
			b.Fatal(err)
		}
	}
}
