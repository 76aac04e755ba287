package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/backend/onnx"
	"github.com/shoal-ml/shoal/internal/backend/xgboost"
	pb "github.com/shoal-ml/shoal/internal/oip/inferencepb"
)

// batchEcho is the echo model declaring that it can batch.
type batchEcho struct{ *echoModel }

func (batchEcho) Batching() backend.Batching { return backend.Batching{Concat: true} }

// batchLoaders adds "batchecho" and "batchgate" (batchEcho, the second
// behind gate) to testLoaders, and the real xgboost loader.
func batchLoaders(gate chan struct{}) map[string]backend.Loader {
	l := testLoaders(gate)
	echo, gated := l["echo"], l["gate"]
	l["batchecho"] = func(ctx context.Context, cfg backend.Config) (backend.Model, error) {
		m, err := echo(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return batchEcho{m.(*echoModel)}, nil
	}
	l["batchgate"] = func(ctx context.Context, cfg backend.Config) (backend.Model, error) {
		m, err := gated(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return batchEcho{m.(*echoModel)}, nil
	}
	l["xgboost"] = xgboost.Load
	l["onnx"] = onnx.Load
	return l
}

// TestBatchingConfig loads model.yaml files with a batching block: valid
// ones serve, invalid ones fail the load with a reason.
func TestBatchingConfig(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		wantErr    string // empty: loads
	}{
		{"minimal", "format: batchecho\ninputs: [{name: x, datatype: FP32, shape: [-1, 3]}]\nbatching: {max_batch_size: 8}\n", ""},
		{"full", "format: batchecho\ninputs: [{name: x, datatype: FP32, shape: [-1, 3]}]\nbatching: {max_batch_size: 8, max_queue_delay: 2ms, preferred_batch_sizes: [4, 8], max_queue_size: 64, default_timeout: 1s, priority_levels: 2, wait_for_arriving: true}\nmax_concurrency: 2\n", ""},
		{"backend cannot batch", "format: echo\ninputs: [{name: x, datatype: FP32, shape: [-1, 3]}]\nbatching: {max_batch_size: 8}\n", "does not declare that it can batch"},
		{"no size", "format: batchecho\ninputs: [{name: x, datatype: FP32, shape: [-1, 3]}]\nbatching: {max_queue_delay: 1ms}\n", "max_batch_size must be at least 1"},
		{"bad duration", "format: batchecho\ninputs: [{name: x, datatype: FP32, shape: [-1, 3]}]\nbatching: {max_batch_size: 8, max_queue_delay: 5}\n", "duration"},
		{"unknown field", "format: batchecho\ninputs: [{name: x, datatype: FP32, shape: [-1, 3]}]\nbatching: {max_batch_size: 8, delay: 1ms}\n", "unknown field"},
		{"preferred too big", "format: batchecho\ninputs: [{name: x, datatype: FP32, shape: [-1, 3]}]\nbatching: {max_batch_size: 8, preferred_batch_sizes: [16]}\n", "preferred_batch_sizes"},
		{"queue below batch", "format: batchecho\ninputs: [{name: x, datatype: FP32, shape: [-1, 3]}]\nbatching: {max_batch_size: 8, max_queue_size: 4}\n", "max_queue_size"},
		{"fixed first dimension", "format: batchecho\ninputs: [{name: x, datatype: FP32, shape: [2, 3]}]\nbatching: {max_batch_size: 8}\n", "dynamic first dimension"},
		{"untyped input", "format: batchecho\ninputs: [{name: x, shape: [-1, 3]}]\nbatching: {max_batch_size: 8}\n", "typed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "m/1/model.yaml", tc.yaml)
			s, err := New(Config{Repository: dir, Loaders: batchLoaders(nil)})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Load(context.Background(), "m")
			defer s.Close(context.Background())
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Load = %v, want success", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Load = %v, want an error with %q", err, tc.wantErr)
			}
		})
	}
}

// TestBatchingBitForBit sends distinct rows from 64 concurrent clients to
// a model served twice, without and with batching: every batched answer
// must equal the unbatched one bit for bit, and batches must have formed.
// The models: an XGBoost one (the backend declares batching), and the ONNX
// MLP of bench/batch (the graph is proven per-row at load; its products of
// many rows take other kernel paths than those of one row).
func TestBatchingBitForBit(t *testing.T) {
	for _, tc := range []struct {
		name, src, file, input, batching string
		width                            int
	}{
		{"xgboost", filepath.Join("..", "backend", "xgboost", "testdata", "gbtree_multi_softprob.json"), "model.json", "input", "max_batch_size: 32, max_queue_delay: 2ms", 4},
		{"onnx-mlp", filepath.Join("..", "..", "bench", "batch", "mlp.onnx"), "model.onnx", "input", "max_batch_size: 32, max_queue_delay: 2ms, wait_for_arriving: true", 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := os.ReadFile(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			writeFile(t, dir, "plain/1/"+tc.file, string(src))
			writeFile(t, dir, "batched/1/"+tc.file, string(src))
			writeFile(t, dir, "batched/model.yaml", "batching: {"+tc.batching+"}\n")
			ts := start(t, Config{Repository: dir, Loaders: batchLoaders(nil)})

			const clients, perClient = 64, 6
			var wg sync.WaitGroup
			for c := range clients {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(c), 7))
					for i := range perClient {
						n := 1 + (c+i)%3
						vals := make([]string, tc.width*n)
						for j := range vals {
							v := float32(rng.NormFloat64()*2 + 4)
							vals[j] = strconv.FormatFloat(float64(v), 'g', -1, 32)
						}
						body := fmt.Sprintf(`{"inputs":[{"name":%q,"datatype":"FP32","shape":[%d,%d],"data":[%s]}]}`, tc.input, n, tc.width, strings.Join(vals, ","))
						want := inferOutputs(t, ts, "plain", body)
						got := inferOutputs(t, ts, "batched", body)
						if got != want {
							t.Errorf("client %d request %d: batched outputs\n%s\nwant\n%s", c, i, got, want)
						}
					}
				})
			}
			wg.Wait()
			m := ts.metricText(t)
			execs := metricValue(t, m, `shoal_inference_batch_size_count{model="batched",version="1"}`)
			if execs >= clients*perClient {
				t.Errorf("%v executions for %d requests: nothing was batched", execs, clients*perClient)
			}
			t.Logf("%d requests ran in %v executions", clients*perClient, execs)
		})
	}
}

// inferOutputs posts body to the model and returns the JSON of the
// response's outputs. It retries a 429 (on a busy machine the batcher may
// predict a wait beyond max_queue_delay, and rightly reject), backing off
// a millisecond, up to 1000 times.
func inferOutputs(t *testing.T, ts *testServer, model, body string) string {
	code, _, b := ts.do(t, "POST", "/v2/models/"+model+"/infer", []byte(body), nil)
	for i := 0; code == http.StatusTooManyRequests && i < 1000; i++ {
		time.Sleep(time.Millisecond)
		code, _, b = ts.do(t, "POST", "/v2/models/"+model+"/infer", []byte(body), nil)
	}
	if code != 200 {
		t.Errorf("POST %s = %d %s", model, code, b)
		return ""
	}
	var resp struct{ Outputs json.RawMessage }
	if err := json.Unmarshal(b, &resp); err != nil {
		t.Error(err)
	}
	return string(resp.Outputs)
}

func metricValue(t *testing.T, text, series string) float64 {
	t.Helper()
	for line := range strings.Lines(text) {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

// TestBatchingOverload fills a batching model's queue: the next request
// is rejected at once, with 429 and Retry-After over REST (before its body
// is read) and RESOURCE_EXHAUSTED over gRPC; the admitted ones complete.
func TestBatchingOverload(t *testing.T) {
	gate := make(chan struct{})
	dir := t.TempDir()
	writeFile(t, dir, "q/1/model.yaml", "format: batchgate\ninputs: [{name: x, datatype: FP32, shape: [-1]}]\nbatching: {max_batch_size: 1, max_queue_size: 1}\n")
	ts := start(t, Config{Repository: dir, Loaders: batchLoaders(gate)})
	body := []byte(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}`)

	// One request runs (held by the gate), one waits for the next round.
	var wg sync.WaitGroup
	codes200 := make([]int, 2)
	for i := range codes200 {
		wg.Go(func() { codes200[i], _, _ = ts.do(t, "POST", "/v2/models/q/infer", body, nil) })
		waitFor(t, func() bool {
			return metricValue(t, ts.metricText(t), `shoal_inference_inflight_requests{model="q"}`) == float64(i+1)
		})
	}
	code, hdr, b := ts.do(t, "POST", "/v2/models/q/infer", body, nil)
	if code != 429 || hdr.Get("Retry-After") == "" {
		t.Errorf("third request = %d (Retry-After %q) %s, want 429 with Retry-After", code, hdr.Get("Retry-After"), b)
	}
	// Over REST the excess is shed before its body is read: even a body
	// that would not decode gets 429, not 400.
	if code, _, b := ts.do(t, "POST", "/v2/models/q/infer", []byte(`{not json`), nil); code != 429 {
		t.Errorf("undecodable request while full = %d %s, want 429", code, b)
	}
	c := pb.NewGRPCInferenceServiceClient(ts.conn)
	var md metadata.MD
	_, err := c.ModelInfer(context.Background(), &pb.ModelInferRequest{
		ModelName: "q",
		Inputs:    []*pb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{1}, Contents: &pb.InferTensorContents{Fp32Contents: []float32{1}}}},
	}, grpc.Header(&md))
	if status.Code(err) != codes.ResourceExhausted || len(md.Get("retry-after")) == 0 {
		t.Errorf("gRPC ModelInfer = %v (retry-after %v), want RESOURCE_EXHAUSTED with retry-after", err, md.Get("retry-after"))
	}
	close(gate)
	wg.Wait()
	if codes200[0] != 200 || codes200[1] != 200 {
		t.Errorf("admitted requests = %v, want 200s", codes200)
	}
	if n := metricValue(t, ts.metricText(t), `shoal_batch_rejections_total{model="q",reason="queue_full",version="1"}`); n != 3 {
		t.Errorf("rejections = %v, want 3", n)
	}
	if n := metricValue(t, ts.metricText(t), `shoal_inference_requests_total{model="q",outcome="rejected",version="1"}`); n != 3 {
		t.Errorf("requests rejected = %v, want 3", n)
	}
}
