// Package batch holds the dynamic batching benchmark (run.sh); this file
// measures the backend alone: the cost of one row by batch size.
package batch

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/backend/xgboost"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// BenchmarkInferRows runs the model that gen.py writes (its path in
// $SHOAL_BATCH_MODEL; skipped without it) on batches of 1 to 64 rows and
// reports the time per row: how much batching saves in the backend alone.
func BenchmarkInferRows(b *testing.B) {
	path := os.Getenv("SHOAL_BATCH_MODEL")
	if path == "" {
		b.Skip("set SHOAL_BATCH_MODEL to the model.json that gen.py writes")
	}
	m, err := xgboost.Load(context.Background(), backend.Config{Artifact: path})
	if err != nil {
		b.Fatal(err)
	}
	// Distinct rows, the training rows of the request bodies gen.py
	// writes beside the model: one row repeated would find its path
	// through the trees in cache every time.
	x := readRows(b, filepath.Join(filepath.Dir(path), "bodies.jsonl"))
	pool := len(x) / 32
	for _, n := range []int{1, 8, 64} {
		b.Run(fmt.Sprint("rows=", n), func(b *testing.B) {
			ins := make([][]*tensor.Tensor, pool/n)
			for j := range ins {
				ins[j] = []*tensor.Tensor{{Name: "input", DType: tensor.FP32, Shape: []int64{int64(n), 32}, Data: x[j*n*32 : (j+1)*n*32]}}
			}
			b.ReportAllocs()
			j := 0
			for b.Loop() {
				if _, err := m.Infer(context.Background(), ins[j%len(ins)]); err != nil {
					b.Fatal(err)
				}
				j++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
		})
	}
}

// readRows returns the rows of every body in a bodies.jsonl, row-major.
func readRows(b *testing.B, file string) []float32 {
	f, err := os.Open(file)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var rows []float32
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var body struct {
			Inputs []struct{ Data []float32 }
		}
		if err := json.Unmarshal(sc.Bytes(), &body); err != nil {
			b.Fatal(err)
		}
		rows = append(rows, body.Inputs[0].Data...)
	}
	if err := sc.Err(); err != nil {
		b.Fatal(err)
	}
	return rows
}
