package httpmodel_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/backend/httpmodel"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// TestURL serves a model from a server shoal does not start: an in-process
// app answering {"preds": row sums}, 400 for an empty row and 500 for a
// row starting with -1.
func TestURL(t *testing.T) {
	app := http.NewServeMux()
	app.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	app.HandleFunc("POST /score", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Rows [][]float64 }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		var sums []float64
		for _, row := range body.Rows {
			if len(row) == 0 {
				http.Error(w, `{"error": "empty row"}`, 400)
				return
			}
			if row[0] == -1 {
				http.Error(w, "boom", 500)
				return
			}
			s := 0.0
			for _, v := range row {
				s += v
			}
			sums = append(sums, s)
		}
		json.NewEncoder(w).Encode(map[string]any{"preds": sums})
	})
	ts := httptest.NewServer(app)
	defer ts.Close()

	m, err := httpmodel.Load(context.Background(), backend.Config{
		Name: "sum", Dir: t.TempDir(),
		Inputs:  []backend.TensorSpec{{Name: "rows", DType: tensor.FP64, Shape: []int64{-1, -1}}},
		Outputs: []backend.TensorSpec{{Name: "sums", DType: tensor.FP32, Shape: []int64{-1}}},
		Parameters: map[string]string{
			"url": ts.URL, "health_path": "/healthz", "predict_path": "/score",
			"instances_field": "rows", "predictions_field": "preds", "health_interval": "20ms",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.(backend.Closer).Close()
	ready := m.(interface{ Ready() bool })

	tests := []struct {
		name    string
		in      *tensor.Tensor
		want    []float32
		wantErr error
	}{
		{"sums", &tensor.Tensor{Name: "rows", DType: tensor.FP64, Shape: []int64{2, 2}, Data: []float64{1, 2, 3, 4.5}}, []float32{3, 7.5}, nil},
		{"app's 400", &tensor.Tensor{Name: "rows", DType: tensor.FP64, Shape: []int64{1, 0}, Data: []float64{}}, nil, backend.ErrInvalidInput},
		{"app's 500", &tensor.Tensor{Name: "rows", DType: tensor.FP64, Shape: []int64{1, 1}, Data: []float64{-1}}, nil, nil},
	}
	for _, tt := range tests {
		out, err := m.Infer(context.Background(), []*tensor.Tensor{tt.in})
		switch {
		case tt.want != nil:
			if err != nil || len(out) != 1 || out[0].Name != "sums" || !slices.Equal(out[0].Data.([]float32), tt.want) {
				t.Errorf("%s: Infer() = %v, %v; want sums %v", tt.name, out, err, tt.want)
			}
		case tt.wantErr != nil:
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("%s: Infer() error = %v, want %v", tt.name, err, tt.wantErr)
			}
		default:
			if err == nil || errors.Is(err, backend.ErrInvalidInput) || errors.Is(err, backend.ErrUnavailable) {
				t.Errorf("%s: Infer() error = %v, want a plain (500) error", tt.name, err)
			}
		}
	}

	// Down: unready, and requests get ErrUnavailable.
	ts.Close()
	waitFor(t, 5*time.Second, "still ready with the app down", func() bool { return !ready.Ready() })
	in := tests[0].in
	if _, err := m.Infer(context.Background(), []*tensor.Tensor{in}); !errors.Is(err, backend.ErrUnavailable) {
		t.Errorf("Infer() with the app down = %v, want ErrUnavailable", err)
	}
}
