package python_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/backend/python"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// BenchmarkInfer measures one Infer round trip through a worker whose
// predict is a numpy row sum: the transport's cost, with the model's own
// work next to nothing.
func BenchmarkInfer(b *testing.B) {
	for _, rows := range []int{1, 64} {
		b.Run("rows="+strconv.Itoa(rows), func(b *testing.B) {
			py := benchPython(b)
			dir := b.TempDir()
			writeFileB(b, filepath.Join(dir, "sum.py"), "class Model:\n    def predict(self, inputs):\n        return inputs['input'].sum(axis=1)\n")
			m, err := python.Load(context.Background(), backend.Config{
				Name: "sum", Dir: dir,
				Outputs:    []backend.TensorSpec{{Name: "y", DType: tensor.FP32, Shape: []int64{-1}}},
				Parameters: map[string]string{"python": py, "module": "sum.py", "workers": "1"},
			})
			if err != nil {
				b.Fatal(err)
			}
			defer m.(backend.Closer).Close()
			in := &tensor.Tensor{Name: "input", DType: tensor.FP32, Shape: []int64{int64(rows), 4}, Data: make([]float32, rows*4)}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Infer(context.Background(), []*tensor.Tensor{in}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchPython is pythonPath for benchmarks: it skips without numpy.
func benchPython(b *testing.B) string {
	b.Helper()
	py := os.Getenv("SHOAL_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	if err := exec.Command(py, "-c", "import numpy").Run(); err != nil {
		b.Skipf("%s with numpy is needed (apt-get install -y python3-numpy): %v", py, err)
	}
	return py
}

func writeFileB(b *testing.B, path, data string) {
	b.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		b.Fatal(err)
	}
}
