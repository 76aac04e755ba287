package tensor

import (
	"errors"
	"math"
	"reflect"
	"testing"
)

func TestNumElements(t *testing.T) {
	cases := []struct {
		shape   []int64
		want    int
		wantErr bool
	}{
		{nil, 1, false},
		{[]int64{0}, 0, false},
		{[]int64{2, 3, 4}, 24, false},
		{[]int64{0, math.MaxInt64}, 0, false},
		{[]int64{-1}, 0, true},
		{[]int64{1 << 16, 1 << 16}, 0, true},
		{[]int64{math.MaxInt64, 2}, 0, true},
		{[]int64{1 << 31}, 1 << 31, false},
		{[]int64{1<<31 + 1}, 0, true},
	}
	for _, c := range cases {
		got, err := NumElements(c.shape)
		if (err != nil) != c.wantErr || got != c.want {
			t.Errorf("NumElements(%v) = %d, %v; want %d, error %v", c.shape, got, err, c.want, c.wantErr)
		}
		if err != nil && !errors.Is(err, ErrShape) {
			t.Errorf("NumElements(%v) error %v does not wrap ErrShape", c.shape, err)
		}
	}
}

func TestParseDType(t *testing.T) {
	for dt := Bool; dt <= Bytes; dt++ {
		got, err := ParseDType(dt.String())
		if err != nil || got != dt {
			t.Errorf("ParseDType(%q) = %v, %v", dt.String(), got, err)
		}
	}
	for _, bad := range []string{"", "INVALID", "fp32", "FP8"} {
		if _, err := ParseDType(bad); !errors.Is(err, ErrDType) {
			t.Errorf("ParseDType(%q) = %v, want ErrDType", bad, err)
		}
	}
}

func TestFloat16(t *testing.T) {
	cases := []struct {
		f float32
		h uint16
	}{
		{0, 0x0000}, {1, 0x3c00}, {-2, 0xc000}, {0.5, 0x3800}, {65504, 0x7bff},
		{float32(math.Inf(1)), 0x7c00}, {float32(math.Inf(-1)), 0xfc00},
		{5.960464477539063e-08, 0x0001}, // smallest subnormal
		{6.103515625e-05, 0x0400},       // smallest normal
		{1e6, 0x7c00},                   // overflow to +Inf
		{1.0009765625, 0x3c01},
	}
	for _, c := range cases {
		if got := Float32ToFloat16(c.f); got != c.h {
			t.Errorf("Float32ToFloat16(%v) = %#04x, want %#04x", c.f, got, c.h)
		}
		if c.f != 1e6 {
			if got := Float16ToFloat32(c.h); got != c.f {
				t.Errorf("Float16ToFloat32(%#04x) = %v, want %v", c.h, got, c.f)
			}
		}
	}
	if !math.IsNaN(float64(Float16ToFloat32(Float32ToFloat16(float32(math.NaN()))))) {
		t.Error("NaN does not survive FP16")
	}
	// Every half value converts to float32 and back unchanged (NaNs aside).
	for h := 0; h < 1<<16; h++ {
		f := Float16ToFloat32(uint16(h))
		if f != f {
			continue
		}
		if back := Float32ToFloat16(f); back != uint16(h) {
			t.Fatalf("half %#04x -> %v -> %#04x", h, f, back)
		}
	}
}

func TestRawRoundTrip(t *testing.T) {
	ts := []*Tensor{
		{DType: Bool, Shape: []int64{3}, Data: []bool{true, false, true}},
		{DType: Uint8, Shape: []int64{2}, Data: []uint8{0, 255}},
		{DType: Uint16, Shape: []int64{1}, Data: []uint16{65535}},
		{DType: Uint32, Shape: []int64{1}, Data: []uint32{1 << 31}},
		{DType: Uint64, Shape: []int64{1}, Data: []uint64{math.MaxUint64}},
		{DType: Int8, Shape: []int64{2}, Data: []int8{-128, 127}},
		{DType: Int16, Shape: []int64{1}, Data: []int16{-300}},
		{DType: Int32, Shape: []int64{2, 1}, Data: []int32{-1, 7}},
		{DType: Int64, Shape: []int64{1}, Data: []int64{math.MinInt64}},
		{DType: FP16, Shape: []int64{1}, Data: []uint16{0x3c00}},
		{DType: FP32, Shape: []int64{2, 2}, Data: []float32{1.5, -2, 0, float32(math.Inf(1))}},
		{DType: FP64, Shape: []int64{1}, Data: []float64{math.Pi}},
		{DType: Bytes, Shape: []int64{3}, Data: [][]byte{[]byte("ab"), nil, []byte("\x00\xff")}},
		{DType: FP32, Shape: []int64{0, 4}, Data: []float32{}},
	}
	for _, tt := range ts {
		raw := tt.AppendRaw(nil)
		if len(raw) != tt.RawSize() {
			t.Errorf("%v: AppendRaw wrote %d bytes, RawSize says %d", tt.DType, len(raw), tt.RawSize())
		}
		got, err := FromRaw("", tt.DType, tt.Shape, raw)
		if err != nil {
			t.Errorf("FromRaw(%v): %v", tt.DType, err)
			continue
		}
		if !reflect.DeepEqual(got, tt) {
			t.Errorf("FromRaw(AppendRaw(%+v)) = %+v", tt, got)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("Validate: %v", err)
		}
	}
}

func TestFromRawErrors(t *testing.T) {
	cases := []struct {
		dt    DType
		shape []int64
		raw   []byte
	}{
		{FP32, []int64{2}, make([]byte, 7)},
		{FP32, []int64{2}, make([]byte, 9)},
		{Bytes, []int64{1}, []byte{5, 0, 0, 0, 'a'}},
		{Bytes, []int64{1}, []byte{1, 0, 0}},
		{Bytes, []int64{1}, []byte{1, 0, 0, 0, 'a', 'b'}},
		{Bytes, []int64{1 << 30}, []byte{0, 0, 0, 0}},
		{Invalid, []int64{1}, []byte{0}},
		{FP32, []int64{-1}, nil},
	}
	for _, c := range cases {
		if _, err := FromRaw("x", c.dt, c.shape, c.raw); err == nil {
			t.Errorf("FromRaw(%v, %v, %d bytes) succeeded", c.dt, c.shape, len(c.raw))
		}
	}
}

func TestConversions(t *testing.T) {
	in := &Tensor{DType: Int32, Shape: []int64{3}, Data: []int32{-1, 0, 5}}
	f, err := in.Float32s()
	if err != nil || !reflect.DeepEqual(f, []float32{-1, 0, 5}) {
		t.Errorf("Float32s = %v, %v", f, err)
	}
	back, err := FromFloat64s("y", Int32, []int64{3}, []float64{-1, 0, 5})
	if err != nil || !reflect.DeepEqual(back.Data, in.Data) {
		t.Errorf("FromFloat64s = %v, %v", back, err)
	}
	if _, err := (&Tensor{DType: Bytes, Data: [][]byte{}}).Float64s(); !errors.Is(err, ErrDType) {
		t.Errorf("Float64s(BYTES) = %v, want ErrDType", err)
	}
	bad := &Tensor{DType: FP32, Shape: []int64{2}, Data: []float64{1, 2}}
	if err := bad.Validate(); !errors.Is(err, ErrData) {
		t.Errorf("Validate(FP32 held as []float64) = %v, want ErrData", err)
	}
}

// FuzzFromRaw checks that no raw input panics the decoder and that what
// decodes encodes back to the same bytes.
func FuzzFromRaw(f *testing.F) {
	f.Add(uint8(FP32), int64(2), []byte{0, 0, 128, 63, 0, 0, 0, 64})
	f.Add(uint8(Bytes), int64(2), []byte{1, 0, 0, 0, 'a', 0, 0, 0, 0})
	f.Add(uint8(Bool), int64(1), []byte{1})
	f.Fuzz(func(t *testing.T, dt uint8, n int64, raw []byte) {
		d := DType(dt % 14)
		got, err := FromRaw("x", d, []int64{n}, raw)
		if err != nil {
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatal(err)
		}
		back := got.AppendRaw(nil)
		if d != Bool && !reflect.DeepEqual(back, raw) && !(len(back) == 0 && len(raw) == 0) {
			t.Fatalf("round trip of %v %d: %v -> %v", d, n, raw, back)
		}
	})
}
