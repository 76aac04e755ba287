package httpmodel

import (
	"reflect"
	"strings"
	"testing"

	"github.com/shoal-ml/shoal/internal/tensor"
)

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: "python3 predict.py", want: []string{"python3", "predict.py"}},
		{in: "  gunicorn  -w 2\t-b 127.0.0.1:{port} predict:app ", want: []string{"gunicorn", "-w", "2", "-b", "127.0.0.1:{port}", "predict:app"}},
		{in: `sh -c 'exec python3 "my app.py"'`, want: []string{"sh", "-c", `exec python3 "my app.py"`}},
		{in: `a "b \"c\" \\ \d" e\ f ''`, want: []string{"a", `b "c" \ \d`, "e f", ""}},
		{in: "", wantErr: true},
		{in: "   ", wantErr: true},
		{in: "a 'b", wantErr: true},
		{in: `a "b`, wantErr: true},
		{in: `a \`, wantErr: true},
	}
	for _, tt := range tests {
		got, err := SplitCommand(tt.in)
		if (err != nil) != tt.wantErr || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestAppendInstances(t *testing.T) {
	tests := []struct {
		name    string
		t       *tensor.Tensor
		want    string
		wantErr bool
	}{
		{"fp32 rows", &tensor.Tensor{DType: tensor.FP32, Shape: []int64{2, 2}, Data: []float32{5.1, 3.5, 0.1, -2}}, `{"instances":[[5.1,3.5],[0.1,-2]]}`, false},
		{"fp64 vector", &tensor.Tensor{DType: tensor.FP64, Shape: []int64{3}, Data: []float64{1, 2.5, 1e300}}, `{"instances":[1,2.5,1e+300]}`, false},
		{"int64 3d", &tensor.Tensor{DType: tensor.Int64, Shape: []int64{1, 2, 1}, Data: []int64{-9007199254740993, 7}}, `{"instances":[[[-9007199254740993],[7]]]}`, false},
		{"bool", &tensor.Tensor{DType: tensor.Bool, Shape: []int64{2}, Data: []bool{true, false}}, `{"instances":[true,false]}`, false},
		{"fp16", &tensor.Tensor{DType: tensor.FP16, Shape: []int64{1}, Data: []uint16{tensor.Float32ToFloat16(1.5)}}, `{"instances":[1.5]}`, false},
		{"bytes", &tensor.Tensor{DType: tensor.Bytes, Shape: []int64{2}, Data: [][]byte{[]byte(`a"b`), []byte("é")}}, `{"instances":["a\"b","é"]}`, false},
		{"empty batch", &tensor.Tensor{DType: tensor.FP32, Shape: []int64{0, 4}, Data: []float32{}}, `{"instances":[]}`, false},
		{"scalar", &tensor.Tensor{DType: tensor.FP32, Shape: []int64{}, Data: []float32{1}}, "", true},
		{"nan", &tensor.Tensor{DType: tensor.FP32, Shape: []int64{1}, Data: []float32{float32(nan())}}, "", true},
		{"bad utf8", &tensor.Tensor{DType: tensor.Bytes, Shape: []int64{1}, Data: [][]byte{{0xff}}}, "", true},
		{"short data", &tensor.Tensor{DType: tensor.FP32, Shape: []int64{2}, Data: []float32{1}}, "", true},
	}
	for _, tt := range tests {
		got, err := AppendInstances(nil, "instances", tt.t)
		if (err != nil) != tt.wantErr || (err == nil && string(got) != tt.want) {
			t.Errorf("%s: AppendInstances() = %s, %v; want %s, error %v", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}

func nan() float64 { var z float64; return z / z }

func TestDecodePredictions(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		dt      tensor.DType
		want    *tensor.Tensor
		wantErr string
	}{
		{"iris classes", `{"predictions": [0, 2]}`, tensor.Int64, &tensor.Tensor{Name: "p", DType: tensor.Int64, Shape: []int64{2}, Data: []int64{0, 2}}, ""},
		{"probabilities", `{"predictions": [[0.25, 0.75]], "other": 1}`, tensor.FP32, &tensor.Tensor{Name: "p", DType: tensor.FP32, Shape: []int64{1, 2}, Data: []float32{0.25, 0.75}}, ""},
		{"bare array", `[1.5]`, tensor.FP64, &tensor.Tensor{Name: "p", DType: tensor.FP64, Shape: []int64{1}, Data: []float64{1.5}}, ""},
		{"labels", `{"predictions": ["setosa"]}`, tensor.Bytes, &tensor.Tensor{Name: "p", DType: tensor.Bytes, Shape: []int64{1}, Data: [][]byte{[]byte("setosa")}}, ""},
		{"big uint64", `{"predictions": [18446744073709551615]}`, tensor.Uint64, &tensor.Tensor{Name: "p", DType: tensor.Uint64, Shape: []int64{1}, Data: []uint64{18446744073709551615}}, ""},
		{"exact int64", `{"predictions": [9007199254740993]}`, tensor.Int64, &tensor.Tensor{Name: "p", DType: tensor.Int64, Shape: []int64{1}, Data: []int64{9007199254740993}}, ""},
		{"integral float", `{"predictions": [2.0]}`, tensor.Int32, &tensor.Tensor{Name: "p", DType: tensor.Int32, Shape: []int64{1}, Data: []int32{2}}, ""},
		{"bools", `{"predictions": [true, false]}`, tensor.Bool, &tensor.Tensor{Name: "p", DType: tensor.Bool, Shape: []int64{2}, Data: []bool{true, false}}, ""},
		{"empty", `{"predictions": []}`, tensor.FP64, &tensor.Tensor{Name: "p", DType: tensor.FP64, Shape: []int64{0}, Data: []float64{}}, ""},
		{"not json", `<html>`, tensor.FP64, nil, "not JSON"},
		{"trailing", `{"predictions": [1]} x`, tensor.FP64, nil, "after its JSON"},
		{"no field", `{"preds": [1]}`, tensor.FP64, nil, `no "predictions" field`},
		{"not array", `{"predictions": 1}`, tensor.FP64, nil, "not an array"},
		{"ragged", `{"predictions": [[1, 2], [3]]}`, tensor.FP64, nil, "not rectangular"},
		{"mixed depth", `{"predictions": [[1], 2]}`, tensor.FP64, nil, "not rectangular"},
		{"too deep leaf", `{"predictions": [1, [2]]}`, tensor.FP64, nil, "not rectangular"},
		{"string for number", `{"predictions": ["a"]}`, tensor.FP64, nil, "not a FP64"},
		{"fraction for int", `{"predictions": [1.5]}`, tensor.Int64, nil, "not a INT64"},
		{"overflow int8", `{"predictions": [300]}`, tensor.Int8, nil, "does not fit"},
		{"negative uint", `{"predictions": [-1]}`, tensor.Uint32, nil, "does not fit"},
		{"number for bytes", `{"predictions": [1]}`, tensor.Bytes, nil, "not a BYTES"},
		{"null", `{"predictions": [null]}`, tensor.FP64, nil, "not a FP64"},
	}
	for _, tt := range tests {
		got, err := DecodePredictions([]byte(tt.body), "predictions", "p", tt.dt)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: DecodePredictions() error = %v, want %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: DecodePredictions() = %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
}

func TestParseSettings(t *testing.T) {
	tests := []struct {
		name    string
		params  map[string]string
		wantErr string
	}{
		{"command", map[string]string{"command": "python3 predict.py"}, ""},
		{"url", map[string]string{"url": "http://127.0.0.1:5000/", "timeout": "2s"}, ""},
		{"neither", nil, "exactly one"},
		{"both", map[string]string{"command": "x", "url": "http://h"}, "exactly one"},
		{"bad port", map[string]string{"command": "x", "port": "http"}, "parameters.port"},
		{"port with url", map[string]string{"url": "http://h:1", "port": "2"}, "with url"},
		{"bad path", map[string]string{"command": "x", "health_path": "health"}, "must start with /"},
		{"bad duration", map[string]string{"command": "x", "start_timeout": "soon"}, "start_timeout"},
		{"unknown", map[string]string{"command": "x", "comand": "y"}, `unknown parameter "comand"`},
		{"bad quote", map[string]string{"command": "x 'y"}, "unterminated"},
	}
	for _, tt := range tests {
		_, err := parseSettings(tt.params)
		if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: parseSettings() error = %v, want %q", tt.name, err, tt.wantErr)
		}
	}
}

func FuzzDecodePredictions(f *testing.F) {
	for _, s := range []string{`{"predictions": [0, 2]}`, `{"predictions": [[0.25, 0.75]]}`, `["a"]`, `{"predictions": [[1], 2]}`, `[[[]]]`, `{"predictions": [1e400]}`} {
		f.Add([]byte(s), uint8(tensor.FP64))
	}
	f.Fuzz(func(t *testing.T, data []byte, dt uint8) {
		d := tensor.DType(dt % uint8(tensor.Bytes+1))
		if d == tensor.Invalid {
			d = tensor.FP64
		}
		got, err := DecodePredictions(data, "predictions", "p", d)
		if err != nil {
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("DecodePredictions(%q) returned an invalid tensor: %v", data, err)
		}
		// What decoded encodes (when it has rows and JSON can carry it)
		// and decodes to the same tensor.
		if len(got.Shape) == 0 {
			return
		}
		enc, err := AppendInstances(nil, "predictions", got)
		if err != nil {
			return
		}
		again, err := DecodePredictions(enc, "predictions", "p", d)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", enc, err)
		}
		if got.Shape[0] > 0 && !reflect.DeepEqual(got, again) && d != tensor.FP16 {
			t.Fatalf("round trip of %q: %+v, then %+v", data, got, again)
		}
	})
}

func FuzzSplitCommand(f *testing.F) {
	for _, s := range []string{"python3 predict.py", `sh -c 'a "b"'`, `a\ b "c\"d"`, `'`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := SplitCommand(s)
		if err == nil && len(words) == 0 {
			t.Fatalf("SplitCommand(%q) = no words and no error", s)
		}
		// Quoting every word and joining them gives the words back.
		if err != nil {
			return
		}
		var b strings.Builder
		for _, w := range words {
			b.WriteString(" '" + strings.ReplaceAll(w, "'", `'\''`) + "'")
		}
		again, err := SplitCommand(b.String())
		if err != nil || !reflect.DeepEqual(again, words) {
			t.Fatalf("SplitCommand(%q) = %q; quoted back %q -> %q, %v", s, words, b.String(), again, err)
		}
	})
}
