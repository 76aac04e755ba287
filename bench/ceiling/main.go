// Command ceiling is the upper bound that bench/run.sh reports beside
// shoal: a bare net/http server with one handler, POST /predict, that
// decodes the founding example's {"instances": [[...]]} body with
// encoding/json, evaluates the XGBoost model with shoal's own evaluator
// (internal/backend/xgboost) and answers {"predictions": [class, ...]}.
//
// It does what shoal's /predict must do and nothing else: no router, no
// model repository, no metrics, no logging, no timeouts, no tensor
// conversion. The class is the argmax of the margins, which is what shoal's
// "label" output is (softmax does not change the argmax). A JSON null
// decodes as 0, not as a missing value: the benchmark's rows have none. It
// is a benchmark fixture, not a server to deploy.
//
//	ceiling -addr 127.0.0.1:18082 -model examples/models/iris/1/model.json
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strconv"

	"github.com/shoal-ml/shoal/internal/backend/tree"
	"github.com/shoal-ml/shoal/internal/backend/xgboost"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18082", "listen `address`")
	path := flag.String("model", "examples/models/iris/1/model.json", "XGBoost JSON model `file`")
	flag.Parse()
	data, err := os.ReadFile(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ceiling:", err)
		os.Exit(1)
	}
	m, err := xgboost.Parse(data)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ceiling:", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /predict", predictHandler(m))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	if err := http.ListenAndServe(*addr, mux); err != nil {
		fmt.Fprintln(os.Stderr, "ceiling:", err)
		os.Exit(1)
	}
}

// predictHandler answers POST /predict with the class of each instance.
func predictHandler(m *xgboost.Model) http.HandlerFunc {
	F, G := m.NumFeature, m.OutputGroups()
	return func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Instances [][]float32 `json:"instances"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, `{"error":"bad json"}`, http.StatusBadRequest)
			return
		}
		n := len(body.Instances)
		rows := make([]float32, 0, n*F)
		for _, row := range body.Instances {
			if len(row) != F {
				http.Error(w, `{"error":"bad width"}`, http.StatusBadRequest)
				return
			}
			rows = append(rows, row...)
		}
		margins := make([]float32, n*G)
		m.PredictMargin(rows, margins)
		labels := make([]int64, n)
		tree.Argmax(margins, G, labels)
		out := append(make([]byte, 0, 32+8*n), `{"predictions":[`...)
		for i, l := range labels {
			if i > 0 {
				out = append(out, ',')
			}
			out = strconv.AppendInt(out, l, 10)
		}
		out = append(out, "]}\n"...)
		w.Header().Set("Content-Type", "application/json")
		w.Write(out)
	}
}
