package httpmodel_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/backend/httpmodel"
	pb "github.com/shoal-ml/shoal/internal/oip/inferencepb"
	"github.com/shoal-ml/shoal/internal/procsup"
	"github.com/shoal-ml/shoal/internal/serve"
	"github.com/shoal-ml/shoal/internal/serve/servetest"
)

// python returns the Python 3 the tests use ($SHOAL_PYTHON, default
// /usr/bin/python3, Debian's), skipping the test when it or one of mods is
// missing: CI installs python3-flask, python3-sklearn and python3-numpy.
func python(t *testing.T, mods ...string) string {
	t.Helper()
	py := os.Getenv("SHOAL_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	if _, err := os.Stat(py); err != nil {
		t.Skipf("no %s (set SHOAL_PYTHON, or apt-get install -y python3-flask python3-sklearn python3-numpy)", py)
	}
	if out, err := exec.Command(py, "-c", "import "+strings.Join(mods, ", ")).CombinedOutput(); err != nil {
		t.Skipf("%s lacks %v (apt-get install -y python3-flask python3-sklearn python3-numpy): %s", py, mods, out)
	}
	return py
}

type syncBuf = servetest.SyncBuffer

var waitFor = servetest.WaitFor

func startServer(t *testing.T, repo string, loaders map[string]backend.Loader, log *slog.Logger) *servetest.Server {
	t.Helper()
	return servetest.Start(t, serve.Config{Repository: repo, Loaders: loaders, Logger: log}, 60*time.Second)
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
		cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd")
		if err != nil || cwd != dir {
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

// foundingRepo returns a repository serving the founding example (train.py
// run here to make model.pkl, predict.py unchanged) as model "iris", its
// version directory, and the model.yaml it wrote.
func foundingRepo(t *testing.T, py string) (repo, dir string) {
	t.Helper()
	repo = t.TempDir()
	dir = filepath.Join(repo, "iris", "1")
	for _, f := range []string{"train.py", "predict.py"} {
		b, err := os.ReadFile(filepath.Join("testdata", "seed", f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, f), string(b))
	}
	cmd := exec.Command(py, "train.py")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("train.py: %v\n%s", err, out)
	}
	// The shell stays as the leader with python as its child, so stopping
	// must reach the whole process group.
	writeFile(t, filepath.Join(repo, "iris", "model.yaml"), `format: http
inputs:
  - {name: input, datatype: FP32, shape: [-1, -1]}
outputs:
  - {name: predictions, datatype: INT64, shape: [-1]}
parameters:
  command: sh -c '`+py+` predict.py & wait'
  health_path: /health
  predict_path: /predict
  grace_period: 5s
`)
	return repo, dir
}

func TestFoundingExample(t *testing.T) {
	py := python(t, "flask", "sklearn", "numpy")
	repo, dir := foundingRepo(t, py)
	logs := &syncBuf{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	s := startServer(t, repo, map[string]backend.Loader{"http": httpmodel.Loader(log)}, log)

	infer := func(t *testing.T) {
		t.Helper()
		code, body := s.Post(t, "/v2/models/iris/infer", `{"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]}]}`)
		var resp struct {
			Outputs []struct {
				Name     string
				Datatype string
				Shape    []int64
				Data     []int64
			}
		}
		if err := json.Unmarshal([]byte(body), &resp); code != 200 || err != nil || len(resp.Outputs) != 1 {
			t.Fatalf("POST /v2/models/iris/infer = %d %s", code, body)
		}
		o := resp.Outputs[0]
		if o.Name != "predictions" || o.Datatype != "INT64" || len(o.Data) != 2 || o.Data[0] != 0 || o.Data[1] != 2 {
			t.Errorf("REST output = %+v, want predictions INT64 [0 2]", o)
		}
	}
	infer(t)

	// KServe V1 and the founding /predict path answer as the app does.
	for _, path := range []string{"/v1/models/iris:predict", "/predict"} {
		code, body := s.Post(t, path, `{"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}`)
		if code != 200 || strings.Join(strings.Fields(body), "") != `{"predictions":[0,2]}` {
			t.Errorf("POST %s = %d %s, want 200 {\"predictions\":[0,2]}", path, code, body)
		}
	}

	// gRPC, typed contents.
	r, err := pb.NewGRPCInferenceServiceClient(s.Conn).ModelInfer(context.Background(), &pb.ModelInferRequest{
		ModelName: "iris",
		Inputs: []*pb.ModelInferRequest_InferInputTensor{{
			Name: "input", Datatype: "FP32", Shape: []int64{2, 4},
			Contents: &pb.InferTensorContents{Fp32Contents: []float32{5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Outputs[0].GetContents().GetInt64Contents(); len(got) != 2 || got[0] != 0 || got[1] != 2 {
		t.Errorf("gRPC output = %v, want [0 2]", got)
	}

	// The app's 400 (three features for a four-feature model) is the user's.
	if code, body := s.Post(t, "/v1/models/iris:predict", `{"instances": [[1, 2, 3]]}`); code != 400 || !strings.Contains(body, "features") {
		t.Errorf("three features: %d %s, want 400 naming the features", code, body)
	}

	// Its output is in shoal's logs, with the model's name.
	if l := logs.String(); !strings.Contains(l, `"model":"iris"`) || !strings.Contains(l, "Running on") || !strings.Contains(l, `"stream":"stderr"`) {
		t.Errorf("the app's output is not in the logs with the model name:\n%s", l)
	}

	// Killed, it is unready until restarted, then serves again.
	procs := procsIn(dir)
	if len(procs) != 2 {
		t.Fatalf("processes in the model directory: %v, want the shell and python", procs)
	}
	for _, p := range procs {
		syscall.Kill(p, syscall.SIGKILL)
	}
	waitFor(t, 10*time.Second, "model still ready after its server was killed", func() bool { return s.Status("/v2/models/iris/ready") != 200 })
	if code, body := s.Post(t, "/v1/models/iris:predict", `{"instances": [[5.1, 3.5, 1.4, 0.2]]}`); code != 503 {
		t.Errorf("while restarting: %d %s, want 503", code, body)
	}
	waitFor(t, 30*time.Second, "model not ready again after restart", func() bool { return s.Status("/v2/models/iris/ready") == 200 })
	infer(t)
	if !strings.Contains(logs.String(), "process exited; restarting") {
		t.Errorf("the restart is not logged")
	}

	// Shutdown leaves no process behind.
	if len(procsIn(dir)) != 2 {
		t.Errorf("after the restart: processes %v, want the shell and python", procsIn(dir))
	}
	s.Stop()
	if left := procsIn(dir); len(left) != 0 {
		t.Errorf("after shutdown, processes remain: %v", left)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		cfg     backend.Config
		wantErr error
		want    string
	}{
		{"exits", backend.Config{Parameters: map[string]string{"command": "sh -c 'echo no model here >&2; exit 3'"}}, procsup.ErrNotStarted, "exit status 3"},
		{"no command", backend.Config{}, httpmodel.ErrConfig, "exactly one"},
		{"two inputs", backend.Config{Parameters: map[string]string{"command": "true"}, Inputs: []backend.TensorSpec{{Name: "a"}, {Name: "b"}}}, httpmodel.ErrConfig, "one input"},
		{"no datatype", backend.Config{Parameters: map[string]string{"command": "true"}, Outputs: []backend.TensorSpec{{Name: "y"}}}, httpmodel.ErrConfig, "datatype"},
		{"url down", backend.Config{Parameters: map[string]string{"url": "http://127.0.0.1:1", "start_timeout": "200ms"}}, nil, "not healthy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Dir = t.TempDir()
			m, err := httpmodel.Load(context.Background(), tt.cfg)
			if err == nil {
				m.(backend.Closer).Close()
			}
			if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load() = %v, want %v with %q", err, tt.wantErr, tt.want)
			}
		})
	}
}
