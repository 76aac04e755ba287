package python_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/backend/python"
	pb "github.com/shoal-ml/shoal/internal/oip/inferencepb"
	"github.com/shoal-ml/shoal/internal/serve"
	"github.com/shoal-ml/shoal/internal/serve/servetest"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// pythonPath returns the Python 3 the tests use ($SHOAL_PYTHON, default
// /usr/bin/python3, Debian's), skipping the test when it or one of mods is
// missing: CI installs python3-sklearn and python3-numpy.
func pythonPath(t *testing.T, mods ...string) string {
	t.Helper()
	py := os.Getenv("SHOAL_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	if _, err := os.Stat(py); err != nil {
		t.Skipf("no %s (set SHOAL_PYTHON, or apt-get install -y python3-sklearn python3-numpy)", py)
	}
	if out, err := exec.Command(py, "-c", "import "+strings.Join(mods, ", ")).CombinedOutput(); err != nil {
		t.Skipf("%s lacks %v (apt-get install -y python3-sklearn python3-numpy): %s", py, mods, out)
	}
	return py
}

type syncBuf = servetest.SyncBuffer

var waitFor = servetest.WaitFor

func startServer(t *testing.T, repo string, loaders map[string]backend.Loader, log *slog.Logger) *servetest.Server {
	t.Helper()
	return servetest.Start(t, serve.Config{Repository: repo, Loaders: loaders, Logger: log}, 120*time.Second)
}

// procsIn returns the live processes whose working directory is dir.
func procsIn(dir string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd"); err != nil || cwd != dir {
			continue
		}
		if st, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
			s := string(st)
			if i := strings.LastIndexByte(s, ')'); i > 0 && len(s) > i+2 && s[i+2] == 'Z' {
				continue
			}
		}
		out = append(out, pid)
	}
	return out
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, string(b))
}

// expected is testdata/train_iris.py's expected.json.
type expected struct {
	Rows          [][]float32
	Predictions   []int64
	Probabilities [][]float64
}

// testRepo builds a repository: iris (a pickle, predict), iris-proba
// (predict_proba), iris-refused (a pickle without allow_pickle), custom
// (testdata/custom.py) and broken (its load() raises).
func testRepo(t *testing.T, py string) (repo string, exp expected) {
	t.Helper()
	repo = t.TempDir()
	train := filepath.Join(repo, "iris", "1")
	copyFile(t, "testdata/train_iris.py", filepath.Join(train, "train_iris.py"))
	cmd := exec.Command(py, "train_iris.py")
	cmd.Dir = train
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("train_iris.py: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(train, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &exp); err != nil {
		t.Fatal(err)
	}
	pkl := filepath.Join(train, "model.pkl")
	writeFile(t, filepath.Join(repo, "iris", "model.yaml"), "format: python\nparameters: {python: "+py+", allow_pickle: \"true\", workers: \"2\"}\n")
	copyFile(t, pkl, filepath.Join(repo, "iris-proba", "1", "model.pkl"))
	writeFile(t, filepath.Join(repo, "iris-proba", "model.yaml"), "format: python\nparameters: {python: "+py+", allow_pickle: \"true\", method: predict_proba, workers: \"1\"}\n")
	copyFile(t, pkl, filepath.Join(repo, "iris-batched", "1", "model.pkl"))
	writeFile(t, filepath.Join(repo, "iris-batched", "model.yaml"), "format: python\nbatching: {max_batch_size: 32, max_queue_delay: 5ms}\nparameters: {python: "+py+", allow_pickle: \"true\", batchable: \"true\", workers: \"1\"}\n")
	copyFile(t, pkl, filepath.Join(repo, "iris-refused", "1", "model.pkl"))
	writeFile(t, filepath.Join(repo, "iris-refused", "model.yaml"), "format: python\nparameters: {python: "+py+"}\n")
	copyFile(t, "testdata/custom.py", filepath.Join(repo, "custom", "1", "custom.py"))
	writeFile(t, filepath.Join(repo, "custom", "model.yaml"), `format: python
inputs: [{name: x, datatype: FP32, shape: [-1, -1]}]
outputs: [{name: "y", datatype: FP32, shape: [-1]}, {name: label, datatype: BYTES, shape: [-1]}]
parameters: {python: `+py+`, module: custom.py, workers: "2", timeout: 5s, max_memory_mb: "200", grace_period: 1s}
`)
	copyFile(t, "testdata/broken.py", filepath.Join(repo, "broken", "1", "broken.py"))
	writeFile(t, filepath.Join(repo, "broken", "model.yaml"), `format: python
outputs: [{name: "y", datatype: FP32}]
parameters: {python: `+py+`, module: broken.py, workers: "1"}
`)
	return repo, exp
}

type inferResponse struct {
	Outputs []struct {
		Name     string
		Datatype string
		Shape    []int64
		Data     []any
	}
}

func TestPythonBackend(t *testing.T) {
	py := pythonPath(t, "sklearn", "numpy")
	repo, exp := testRepo(t, py)
	logs := &syncBuf{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	s := startServer(t, repo, map[string]backend.Loader{"python": python.Loader(log)}, log)

	rows, _ := json.Marshal(exp.Rows)
	flat := strings.NewReplacer("[", "", "]", "").Replace(string(rows))
	irisBody := `{"inputs": [{"name": "input", "shape": [3, 4], "datatype": "FP32", "data": [` + flat + `]}]}`
	decode := func(t *testing.T, path, req string) inferResponse {
		t.Helper()
		code, body := s.Post(t, path, req)
		var r inferResponse
		if err := json.Unmarshal([]byte(body), &r); code != 200 || err != nil || len(r.Outputs) == 0 {
			t.Fatalf("infer = %d %s", code, body)
		}
		return r
	}

	t.Run("pickle predict over REST and V1", func(t *testing.T) {
		r := decode(t, "/v2/models/iris/infer", irisBody).Outputs[0]
		got, _ := json.Marshal(r.Data)
		want, _ := json.Marshal(exp.Predictions)
		if r.Name != "predictions" || r.Datatype != "INT64" || string(got) != string(want) {
			t.Errorf("output %s %s %s, want predictions INT64 %s", r.Name, r.Datatype, got, want)
		}
		code, body := s.Post(t, "/v1/models/iris:predict", `{"instances": `+string(rows)+`}`)
		if code != 200 || strings.Join(strings.Fields(body), "") != `{"predictions":`+string(want)+`}` {
			t.Errorf("V1 = %d %s, want predictions %s", code, body, want)
		}
	})

	t.Run("pickle predict over gRPC", func(t *testing.T) {
		var data []float32
		for _, r := range exp.Rows {
			data = append(data, r...)
		}
		r, err := pb.NewGRPCInferenceServiceClient(s.Conn).ModelInfer(context.Background(), &pb.ModelInferRequest{
			ModelName: "iris",
			Inputs: []*pb.ModelInferRequest_InferInputTensor{{
				Name: "input", Datatype: "FP32", Shape: []int64{3, 4},
				Contents: &pb.InferTensorContents{Fp32Contents: data},
			}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Outputs[0].GetContents().GetInt64Contents(); len(got) != 3 || got[0] != exp.Predictions[0] || got[1] != exp.Predictions[1] || got[2] != exp.Predictions[2] {
			t.Errorf("gRPC output = %v, want %v", got, exp.Predictions)
		}
	})

	t.Run("pickle batched across requests", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 24 {
			wg.Go(func() {
				row, _ := json.Marshal(exp.Rows[i%3])
				code, body := s.Post(t, "/v1/models/iris-batched:predict", `{"instances": [`+string(row)+`]}`)
				if want := `{"predictions":[` + strconv.FormatInt(exp.Predictions[i%3], 10) + `]}`; code != 200 || strings.Join(strings.Fields(body), "") != want {
					t.Errorf("request %d = %d %s, want %s", i, code, body, want)
				}
			})
		}
		wg.Wait()
	})

	t.Run("pickle predict_proba", func(t *testing.T) {
		r := decode(t, "/v2/models/iris-proba/infer", irisBody).Outputs[0]
		if r.Name != "probabilities" || r.Datatype != "FP64" || len(r.Shape) != 2 || r.Shape[0] != 3 || r.Shape[1] != 3 {
			t.Fatalf("output %s %s %v, want probabilities FP64 [3 3]", r.Name, r.Datatype, r.Shape)
		}
		for i, v := range r.Data {
			if want := exp.Probabilities[i/3][i%3]; math.Abs(v.(float64)-want) > 1e-12 {
				t.Errorf("probability %d = %v, want %v", i, v, want)
			}
		}
	})

	t.Run("pickle metadata from the estimator", func(t *testing.T) {
		resp, err := http.Get(s.URL + "/v2/models/iris")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := strings.Join(strings.Fields(string(b)), ""); !strings.Contains(got, `"inputs":[{"name":"input","datatype":"FP32","shape":[-1,4]}]`) {
			t.Errorf("metadata = %s, want input FP32 [-1,4]", b)
		}
	})

	t.Run("pickle refused without allow_pickle", func(t *testing.T) {
		code, body := s.Post(t, "/v2/models/iris-refused/infer", irisBody)
		if code != 503 || !strings.Contains(body, "allow_pickle") {
			t.Errorf("infer = %d %s, want 503 naming allow_pickle", code, body)
		}
	})

	t.Run("custom class", func(t *testing.T) {
		r := decode(t, "/v2/models/custom/infer", `{"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 0, 0, 1]}]}`)
		got, _ := json.Marshal(r.Outputs)
		if want := `[{"Name":"y","Datatype":"FP32","Shape":[2],"Data":[14,3]},{"Name":"label","Datatype":"BYTES","Shape":[2],"Data":["high","low"]}]`; string(got) != want {
			t.Errorf("outputs = %s, want %s", got, want)
		}
		code, body := s.Post(t, "/v2/models/custom/infer", `{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}`)
		if code != 400 || !strings.Contains(body, "ValueError: x has 2 columns, want 3") {
			t.Errorf("two columns = %d %s, want 400 with the ValueError", code, body)
		}
	})

	t.Run("load raises", func(t *testing.T) {
		code, body := s.Post(t, "/v2/models/broken/infer", `{"inputs": [{"name": "input", "shape": [1, 1], "datatype": "FP32", "data": [1]}]}`)
		if code != 503 || !strings.Contains(body, "RuntimeError: weights file missing") {
			t.Errorf("infer = %d %s, want 503 with the exception", code, body)
		}
		l := logs.String()
		if !strings.Contains(l, `"model":"broken"`) || !strings.Contains(l, "Traceback") || !strings.Contains(l, "weights file missing") {
			t.Errorf("the traceback is not in the logs with the model name:\n%s", l)
		}
	})

	customDir := filepath.Join(repo, "custom", "1")
	pidFile := filepath.Join(customDir, "busy.pid")
	// Replacements take a while on a busy machine; until one runs the
	// model is unready and answers 503, which is not what these test.
	ready := func(t *testing.T) {
		t.Helper()
		waitFor(t, 60*time.Second, "custom not ready again", func() bool {
			resp, err := http.Get(s.URL + "/v2/models/custom/ready")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		})
	}
	ok := func(t *testing.T) {
		t.Helper()
		ready(t)
		code, body := s.Post(t, "/v2/models/custom/infer", `{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 1, 1]}]}`)
		if code != 200 || !strings.Contains(body, `"data":[6]`) {
			t.Errorf("a normal request after the failure = %d %s", code, body)
		}
	}
	misbehave := func(t *testing.T, first int) (int, string, time.Duration) {
		t.Helper()
		ready(t)
		t0 := time.Now()
		code, body := s.Post(t, "/v2/models/custom/infer", `{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [`+strconv.Itoa(first)+`, 0, 0]}]}`)
		return code, body, time.Since(t0)
	}

	t.Run("worker killed mid-request", func(t *testing.T) {
		os.Remove(pidFile)
		type answer struct {
			code int
			body string
		}
		ch := make(chan answer, 1)
		ready(t)
		go func() {
			code, body, _ := misbehave(t, -1)
			ch <- answer{code, body}
		}()
		var pid int
		waitFor(t, 10*time.Second, "the request never reached predict", func() bool {
			b, err := os.ReadFile(pidFile)
			pid, _ = strconv.Atoi(string(b))
			return err == nil && pid > 0
		})
		syscall.Kill(pid, syscall.SIGKILL)
		select {
		case a := <-ch:
			if a.code != 500 || !strings.Contains(a.body, "worker failed") || !strings.Contains(a.body, "died") {
				t.Errorf("the request = %d %s, want 500 saying the worker died", a.code, a.body)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("the request still hangs 2s after its worker was killed")
		}
		ok(t)
		waitFor(t, 30*time.Second, "the worker was not replaced", func() bool {
			return strings.Contains(logs.String(), "python worker replaced")
		})
	})

	t.Run("worker dies by itself", func(t *testing.T) {
		code, body, _ := misbehave(t, -2)
		if code != 500 || !strings.Contains(body, "died") || !strings.Contains(body, "signal: killed") {
			t.Errorf("the request = %d %s, want 500 saying the worker died", code, body)
		}
		ok(t)
	})

	t.Run("worker past the time limit", func(t *testing.T) {
		code, body, d := misbehave(t, -1)
		if code != 500 || !strings.Contains(body, "time limit") {
			t.Errorf("the request = %d %s, want 500 naming the time limit", code, body)
		}
		if d > 10*time.Second {
			t.Errorf("the request took %v with a 5s time limit", d)
		}
		ok(t)
	})

	t.Run("worker past the memory limit", func(t *testing.T) {
		code, body, _ := misbehave(t, -3)
		if code != 500 || !strings.Contains(body, "max_memory_mb 200") {
			t.Errorf("the request = %d %s, want 500 naming the memory limit", code, body)
		}
		ok(t)
	})

	// Other models kept serving through all of it.
	if code, body := s.Post(t, "/v2/models/iris/infer", irisBody); code != 200 {
		t.Errorf("iris after the failures = %d %s", code, body)
	}
	s.Stop()
	for _, m := range []string{"iris", "iris-proba", "custom"} {
		if left := procsIn(filepath.Join(repo, m, "1")); len(left) != 0 {
			t.Errorf("%s: processes remain after shutdown: %v", m, left)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	py := pythonPath(t, "numpy")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "model.pkl"), "not a pickle")
	writeFile(t, filepath.Join(dir, "m.py"), "class Model:\n    def predict(self, inputs):\n        return inputs['input']\n")
	tests := []struct {
		name    string
		cfg     backend.Config
		wantErr error
		want    string
	}{
		{"pickle not allowed", backend.Config{}, python.ErrPickleNotAllowed, "allow_pickle"},
		{"bad pickle", backend.Config{Parameters: map[string]string{"allow_pickle": "true"}}, python.ErrLoad, "UnpicklingError"},
		{"no outputs", backend.Config{Parameters: map[string]string{"module": "m.py"}}, python.ErrConfig, "declare its outputs"},
		{"no class", backend.Config{Parameters: map[string]string{"module": "m.py", "class": "Nope"}, Outputs: []backend.TensorSpec{{Name: "y"}}}, python.ErrLoad, "defines no class Nope"},
		{"no module", backend.Config{Parameters: map[string]string{"module": "gone.py"}}, python.ErrConfig, "gone.py"},
		{"escaping module", backend.Config{Parameters: map[string]string{"module": "../m.py"}}, python.ErrConfig, "inside the version directory"},
		{"unknown parameter", backend.Config{Parameters: map[string]string{"worker": "2"}}, python.ErrConfig, `unknown parameter "worker"`},
		{"bad workers", backend.Config{Parameters: map[string]string{"workers": "0"}}, python.ErrConfig, "workers"},
		{"no datatype", backend.Config{Parameters: map[string]string{"module": "m.py"}, Outputs: []backend.TensorSpec{{Name: "y"}}}, python.ErrConfig, "datatype"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Dir = dir
			if tt.cfg.Parameters == nil {
				tt.cfg.Parameters = map[string]string{}
			}
			tt.cfg.Parameters["python"] = py
			if tt.cfg.Parameters["workers"] == "" {
				tt.cfg.Parameters["workers"] = "1"
			}
			m, err := python.Load(context.Background(), tt.cfg)
			if err == nil {
				m.(backend.Closer).Close()
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load() = %v, want %v with %q", err, tt.wantErr, tt.want)
			}
		})
	}
}

func TestReadyFromLoadUntilClose(t *testing.T) {
	py := pythonPath(t, "numpy")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "sum.py"), "class Model:\n    def predict(self, inputs):\n        return inputs['input'].sum(axis=1)\n")
	m, err := python.Load(context.Background(), backend.Config{
		Name: "sum", Dir: dir,
		Outputs:    []backend.TensorSpec{{Name: "out", DType: tensor.FP64, Shape: []int64{-1}}},
		Parameters: map[string]string{"python": py, "module": "sum.py", "workers": "2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := m.(interface{ Ready() bool })
	if !r.Ready() {
		t.Error("Ready() = false right after Load")
	}
	out, err := m.Infer(context.Background(), []*tensor.Tensor{{Name: "input", DType: tensor.FP32, Shape: []int64{2, 2}, Data: []float32{1, 2, 3, 4}}})
	if err != nil || len(out) != 1 || out[0].DType != tensor.FP64 || !slices.Equal(out[0].Data.([]float64), []float64{3, 7}) {
		t.Errorf("Infer() = %v, %v; want out FP64 [3 7]", out, err)
	}
	if n := len(procsIn(dir)); n != 2 {
		t.Errorf("%d processes in the model directory, want 2 workers", n)
	}
	m.(backend.Closer).Close()
	if r.Ready() || len(procsIn(dir)) != 0 {
		t.Errorf("after Close: Ready() = %v, processes %v; want false, none", r.Ready(), procsIn(dir))
	}
}
