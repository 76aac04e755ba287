package serve

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const oneRow = `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,2,3]}]}`

// TestLoadUnderTraffic reloads a model, adding a version each time, while
// clients send requests without pause: no request may fail, and the new
// version must serve after each load.
func TestLoadUnderTraffic(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "m/1/model.yaml", echoYAML)
	ts := start(t, Config{Repository: dir})

	var (
		stop   atomic.Bool
		wg     sync.WaitGroup
		ok     atomic.Int64
		failed atomic.Int64
		first  atomic.Value
	)
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				code, _, b := ts.do(t, "POST", "/v2/models/m/infer", []byte(oneRow), nil)
				if code != 200 {
					failed.Add(1)
					first.CompareAndSwap(nil, fmt.Sprintf("%d %s", code, b))
					continue
				}
				ok.Add(1)
			}
		})
	}
	for v := 2; v <= 6; v++ {
		writeFile(t, dir, fmt.Sprintf("m/%d/model.yaml", v), echoYAML)
		ts.postJSON(t, "/v2/repository/models/m/load", ``, 200)
		if got := ts.getJSON(t, "/v2/models/m", 200)["versions"]; jsonString(got) != fmt.Sprintf(`["%d"]`, v) {
			t.Errorf("after load %d: versions = %v", v, got)
		}
	}
	stop.Store(true)
	wg.Wait()
	if failed.Load() > 0 {
		t.Errorf("%d of %d requests failed during reloads; first: %v", failed.Load(), failed.Load()+ok.Load(), first.Load())
	}
	if ok.Load() == 0 {
		t.Error("no request completed")
	}
}

// TestFailedReloadKeepsServing breaks the model's configuration and
// reloads: the load fails with an error, and the old version serves on.
func TestFailedReloadKeepsServing(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "m/1/model.yaml", echoYAML)
	ts := start(t, Config{Repository: dir})
	writeFile(t, dir, "m/2/model.yaml", "format: echo\ninputs: [{name: x, datatype: FP99}]\n")
	e := ts.postJSON(t, "/v2/repository/models/m/load", ``, 400)
	if msg := e["error"].(string); !strings.Contains(msg, "FP99") {
		t.Errorf("load error = %q, want it to name the bad datatype", msg)
	}
	resp := ts.postJSON(t, "/v2/models/m/infer", oneRow, 200)
	if resp["model_version"] != "1" {
		t.Errorf("after a failed reload, version %v served, want 1", resp["model_version"])
	}
	if _, _, b := ts.do(t, "POST", "/v2/repository/index", nil, nil); string(b) != `[{"name":"m","version":"1","state":"READY"}]` {
		t.Errorf("index after a failed reload = %s", b)
	}
}

func TestIndexLoadUnload(t *testing.T) {
	dir := testRepo(t)
	ts := start(t, Config{Repository: dir})
	code, _, b := ts.do(t, "POST", "/v2/repository/index", nil, nil)
	if code != 200 {
		t.Fatalf("index = %d %s", code, b)
	}
	got := string(b)
	for _, want := range []string{
		`{"name":"broken","state":"UNAVAILABLE","reason":"load model \"broken\" version 1: broken: this model never loads"}`,
		`{"name":"echo","version":"1","state":"READY"}`,
		`{"name":"echo","version":"2","state":"READY"}`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("index %s lacks %s", got, want)
		}
	}
	// A model added to the repository appears in the index, and loads.
	writeFile(t, dir, "late/1/model.yaml", echoYAML)
	_, _, b = ts.do(t, "POST", "/v2/repository/index", []byte(`{"ready":false}`), nil)
	if !strings.Contains(string(b), `{"name":"late","state":"UNAVAILABLE","reason":"not loaded"}`) {
		t.Errorf("index %s lacks the new model", b)
	}
	ts.postJSON(t, "/v2/models/late/infer", oneRow, 404)
	ts.postJSON(t, "/v2/repository/models/late/load", ``, 200)
	ts.postJSON(t, "/v2/models/late/infer", oneRow, 200)
	ts.postJSON(t, "/v2/repository/models/late/unload", ``, 200)
	e := ts.postJSON(t, "/v2/models/late/infer", oneRow, 503)
	if !strings.Contains(e["error"].(string), "unloaded") {
		t.Errorf("infer after unload: %v", e)
	}
	_, _, b = ts.do(t, "POST", "/v2/repository/index", []byte(`{"ready":true}`), nil)
	if strings.Contains(string(b), "late") || strings.Contains(string(b), "broken") {
		t.Errorf("ready index %s lists unready models", b)
	}
}

// TestUnloadLetsInFlightFinish holds a request inside the model, unloads
// it, and checks that the request completes and the unload waits for it.
func TestUnloadLetsInFlightFinish(t *testing.T) {
	gate := make(chan struct{})
	dir := testRepo(t)
	ts := start(t, Config{Repository: dir, Loaders: testLoaders(gate)})
	res := make(chan int, 1)
	go func() {
		code, _, _ := ts.do(t, "POST", "/v2/models/gated/infer", []byte(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}`), nil)
		res <- code
	}()
	waitFor(t, func() bool {
		ts.mu.RLock()
		defer ts.mu.RUnlock()
		return ts.models["gated"].def != nil && strings.Contains(ts.metricText(t), `shoal_inference_inflight_requests{model="gated"} 1`)
	})
	unloaded := make(chan error, 1)
	go func() { unloaded <- ts.Unload(context.Background(), "gated") }()
	select {
	case err := <-unloaded:
		t.Fatalf("Unload returned (%v) while a request was in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	ts.postJSON(t, "/v2/models/gated/infer", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}`, 503)
	close(gate)
	if code := <-res; code != 200 {
		t.Errorf("in-flight request during unload = %d, want 200", code)
	}
	if err := <-unloaded; err != nil {
		t.Errorf("Unload = %v", err)
	}
}

func (ts *testServer) metricText(t *testing.T) string {
	_, _, b := ts.do(t, "GET", "/metrics", nil, nil)
	return string(b)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestTimeoutParameter(t *testing.T) {
	gate := make(chan struct{})
	defer close(gate)
	ts := start(t, Config{Repository: testRepo(t), Loaders: testLoaders(gate)})
	e := ts.postJSON(t, "/v2/models/gated/infer", `{"parameters":{"timeout":20000},"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}`, 504)
	if !strings.Contains(e["error"].(string), "timed out") {
		t.Errorf("timeout error = %v", e)
	}
}

// TestGracefulShutdown cancels Serve while a request is in flight: readiness
// turns false at once, the request completes, and Serve returns.
func TestGracefulShutdown(t *testing.T) {
	gate := make(chan struct{})
	ts := start(t, Config{Repository: testRepo(t), Loaders: testLoaders(gate), GracePeriod: 10 * time.Second})
	res := make(chan int, 1)
	go func() {
		code, _, _ := ts.do(t, "POST", "/v2/models/gated/infer", []byte(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}`), nil)
		res <- code
	}()
	waitFor(t, func() bool {
		return strings.Contains(ts.metricText(t), `shoal_inference_inflight_requests{model="gated"} 1`)
	})
	stopped := make(chan error, 1)
	go func() { stopped <- ts.stop() }()
	waitFor(t, func() bool { return !ts.Ready() })
	select {
	case err := <-stopped:
		t.Fatalf("Serve returned (%v) before the in-flight request finished", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(gate)
	if code := <-res; code != 200 {
		t.Errorf("in-flight request during shutdown = %d, want 200", code)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Serve = %v", err)
	}
}

func TestSingleFileAndRepositoryErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "bad/model.yaml", "format: echo\n")                         // no versions
	writeFile(t, dir, "typo/1/model.yaml", "fromat: echo\n")                      // unknown field
	writeFile(t, dir, "unknown/1/model.yaml", "format: tensorflow\n")             // unknown format
	writeFile(t, dir, "escape/1/model.yaml", "format: echo\nartifact: ../../x\n") // path escape
	writeFile(t, dir, "good/1/model.yaml", echoYAML)
	ts := start(t, Config{Repository: dir})
	_, _, b := ts.do(t, "POST", "/v2/repository/index", nil, nil)
	for _, want := range []string{"no version directories", `unknown field \"fromat\"`, `unknown format \"tensorflow\"`, "inside the version directory", `"name":"good","version":"1","state":"READY"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("index %s lacks %s", b, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
		t.Fatal("unexpected file")
	}
}
