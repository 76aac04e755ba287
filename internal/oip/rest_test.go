package oip

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/shoal-ml/shoal/internal/tensor"
)

func TestParseData(t *testing.T) {
	cases := []struct {
		in        string
		dt        tensor.DType
		want      any
		wantShape []int64
	}{
		{`[1,2,3]`, tensor.FP32, []float32{1, 2, 3}, []int64{3}},
		{` [ [1, 2] , [3,4] ] `, tensor.Int64, []int64{1, 2, 3, 4}, []int64{2, 2}},
		{`[[[1],[2]],[[3],[4]]]`, tensor.Uint8, []uint8{1, 2, 3, 4}, []int64{2, 2, 1}},
		{`7`, tensor.Int32, []int32{7}, nil},
		{`[]`, tensor.FP64, []float64{}, []int64{0}},
		{`[[],[]]`, tensor.FP64, []float64{}, []int64{2, 0}},
		{`[true,false]`, tensor.Bool, []bool{true, false}, []int64{2}},
		{`["a","\u00e9\n"]`, tensor.Bytes, [][]byte{[]byte("a"), []byte("é\n")}, []int64{2}},
		{`[-1.5e3,"Inf"]`, tensor.FP64, []float64{-1500, math.Inf(1)}, []int64{2}},

		{`[1.5]`, tensor.FP16, []uint16{tensor.Float32ToFloat16(1.5)}, []int64{1}},
	}
	for _, c := range cases {
		got, shape, err := ParseData([]byte(c.in), c.dt)
		if err != nil {
			t.Errorf("ParseData(%s, %v) error %v", c.in, c.dt, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) || !reflect.DeepEqual(shape, c.wantShape) {
			t.Errorf("ParseData(%s, %v) = %v %v, want %v %v", c.in, c.dt, got, shape, c.want, c.wantShape)
		}
	}
}

func TestParseDataNull(t *testing.T) {
	got, _, err := ParseData([]byte(`[1,null]`), tensor.FP32)
	if err != nil {
		t.Fatal(err)
	}
	if v := got.([]float32); v[0] != 1 || !math.IsNaN(float64(v[1])) {
		t.Errorf("ParseData([1,null], FP32) = %v, want [1 NaN]", v)
	}
}

func TestParseDataErrors(t *testing.T) {
	cases := []struct {
		in string
		dt tensor.DType
	}{
		{`[1,2`, tensor.FP32},
		{`[1,,2]`, tensor.FP32},
		{`[1 2]`, tensor.FP32},
		{`[[1],2]`, tensor.FP32},
		{`[1,[2]]`, tensor.FP32},
		{`[[1,2],[3]]`, tensor.FP32},
		{`[300]`, tensor.Uint8},
		{`[-1]`, tensor.Uint32},
		{`[1.5]`, tensor.Int64},
		{`["1"]`, tensor.Int64},
		{`[1]`, tensor.Bytes},
		{`[null]`, tensor.Int64},
		{`[1]`, tensor.Bool},
		{`["x"]`, tensor.FP32},
		{`["unterminated]`, tensor.Bytes},
		{`[1]x`, tensor.FP32},
		{`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`, tensor.FP32},
		{``, tensor.FP32},
	}
	for _, c := range cases {
		if _, _, err := ParseData([]byte(c.in), c.dt); !errors.Is(err, ErrBadRequest) {
			t.Errorf("ParseData(%s, %v) error = %v, want ErrBadRequest", c.in, c.dt, err)
		}
	}
}

// TestRoundTrip encodes tensors of every type as a JSON response and
// decodes them back as a request.
func TestRoundTrip(t *testing.T) {
	ts := []*tensor.Tensor{
		{Name: "b", DType: tensor.Bool, Shape: []int64{2}, Data: []bool{true, false}},
		{Name: "u64", DType: tensor.Uint64, Shape: []int64{1}, Data: []uint64{math.MaxUint64}},
		{Name: "i8", DType: tensor.Int8, Shape: []int64{2}, Data: []int8{-128, 127}},
		{Name: "i64", DType: tensor.Int64, Shape: []int64{2}, Data: []int64{math.MinInt64, math.MaxInt64}},
		{Name: "f16", DType: tensor.FP16, Shape: []int64{1}, Data: []uint16{tensor.Float32ToFloat16(-0.25)}},
		{Name: "f32", DType: tensor.FP32, Shape: []int64{2, 2}, Data: []float32{1.1, float32(math.Inf(-1)), 3.4e38, 1e-45}},
		{Name: "f64", DType: tensor.FP64, Shape: []int64{1}, Data: []float64{math.Pi}},
		{Name: "s", DType: tensor.Bytes, Shape: []int64{2}, Data: [][]byte{[]byte("x\"\\\x01"), nil}},
	}
	for _, binary := range []bool{false, true} {
		resp := &InferResponse{ModelName: "m", Outputs: ts}
		for range ts {
			resp.Binary = append(resp.Binary, binary)
		}
		body, hl, err := EncodeResponse(nil, resp)
		if err != nil {
			t.Fatal(err)
		}
		// Reshape the response into a request: outputs become inputs.
		js := body
		if hl >= 0 {
			js = body[:hl]
		}
		var w struct {
			Outputs []map[string]any `json:"outputs"`
		}
		d := json.NewDecoder(bytes.NewReader(js))
		d.UseNumber()
		if err := d.Decode(&w); err != nil {
			t.Fatalf("response %s: %v", js, err)
		}
		rj, _ := json.Marshal(map[string]any{"inputs": w.Outputs})
		reqBody := rj
		if hl >= 0 {
			reqBody = append(rj, body[hl:]...)
			hl = len(rj)
		}
		req, err := DecodeRequest(reqBody, hl)
		if err != nil {
			t.Fatalf("binary=%v: DecodeRequest: %v\n%s", binary, err, rj)
		}
		for i, got := range req.Inputs {
			if !reflect.DeepEqual(got, ts[i]) {
				t.Errorf("binary=%v: round trip of %s = %+v, want %+v", binary, ts[i].Name, got, ts[i])
			}
		}
	}
}

func TestV1(t *testing.T) {
	r, err := DecodeV1([]byte(`{"instances":[[1,2],[3,4]]}`))
	if err != nil {
		t.Fatal(err)
	}
	in, err := r.Tensor("x", tensor.FP64)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in.Shape, []int64{2, 2}) {
		t.Errorf("shape %v", in.Shape)
	}
	out := &tensor.Tensor{Name: "y", DType: tensor.Int64, Shape: []int64{2}, Data: []int64{0, 2}}
	b, err := EncodeV1(nil, out)
	if err != nil || string(b) != `{"predictions":[0,2]}` {
		t.Errorf("EncodeV1 = %s, %v", b, err)
	}
	if _, err := DecodeV1([]byte(`{"inputs":[[1]]}`)); err != nil {
		t.Errorf("DecodeV1(inputs) = %v", err)
	}
	for _, bad := range []string{`{}`, `{"instances":null}`, `{"instances":{"a":1}}`, `[`} {
		if _, err := DecodeV1([]byte(bad)); !errors.Is(err, ErrBadRequest) {
			t.Errorf("DecodeV1(%s) = %v, want ErrBadRequest", bad, err)
		}
	}
}

// FuzzDecodeRequest checks that no body or header length panics the
// decoder, and that decoded tensors are valid and survive re-encoding.
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"id":"1","inputs":[{"name":"x","datatype":"FP32","shape":[2,2],"data":[[1,2],[3,4]]}],"outputs":[{"name":"y"}]}`), -1)
	f.Add([]byte(`{"inputs":[{"name":"s","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":6}}]}`+"\x02\x00\x00\x00hi"), 88)
	f.Add([]byte(`{"inputs":[{"name":"b","datatype":"BOOL","shape":[3],"data":[true,false,true]}]}`), -1)
	f.Add([]byte(`{"inputs":[{"name":"x","datatype":"INT8","shape":[1],"parameters":{"binary_data_size":1}}]}`+"\x05"), 80)
	f.Fuzz(func(t *testing.T, body []byte, hl int) {
		if hl < -1 {
			hl = -1
		}
		req, err := DecodeRequest(body, hl)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v does not wrap ErrBadRequest", err)
			}
			return
		}
		for _, in := range req.Inputs {
			if err := in.Validate(); err != nil {
				t.Fatalf("decoded invalid tensor: %v", err)
			}
			if _, err := AppendData(nil, in); err != nil {
				t.Fatalf("re-encode: %v", err)
			}
		}
	})
}

// FuzzParseData checks the data parser against encoding/json: whatever it
// accepts as FP64 must be valid JSON, and it never panics.
func FuzzParseData(f *testing.F) {
	for _, s := range []string{`[1,2,3]`, `[[1],[2]]`, `["a","b"]`, `[true]`, `1e5`, `[[],[]]`, `"NaN"`} {
		f.Add([]byte(s), uint8(tensor.FP64))
	}
	f.Fuzz(func(t *testing.T, data []byte, dt uint8) {
		d := tensor.DType(dt % 14)
		got, shape, err := ParseData(data, d)
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("ParseData accepted invalid JSON %q", data)
		}
		n := 1
		for _, s := range shape {
			n *= int(s)
		}
		tt := &tensor.Tensor{DType: d, Shape: shape, Data: got}
		if tt.Len() != n {
			t.Fatalf("ParseData(%q) = %d elements, shape %v", data, tt.Len(), shape)
		}
	})
}
