package replicatest

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

func TestModelDir(t *testing.T) {
	dir := ModelDir(t)
	if _, err := os.Stat(filepath.Join(dir, "iris", "1")); err != nil {
		t.Errorf("ModelDir has no iris/1: %v", err)
	}
}

// TestPredictAndLoad runs Predict and Load against a replica stand-in
// that answers class 0 to every other request and 503 to the rest.
func TestPredictAndLoad(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/models/wrong/infer":
			w.Write([]byte(`{"outputs":[{"name":"label","data":[1]}]}`))
		case r.URL.Path != "/v2/models/iris/infer":
			http.NotFound(w, r)
		case n.Add(1)%2 == 0:
			http.Error(w, "busy", http.StatusServiceUnavailable)
		default:
			w.Write([]byte(`{"outputs":[{"name":"label","data":[0]}]}`))
		}
	}))
	defer srv.Close()
	if err := Predict(srv.URL, "iris"); err != nil {
		t.Errorf("Predict = %v, want class 0", err)
	}
	if err := Predict(srv.URL, "iris"); err == nil {
		t.Error("Predict of a 503 = nil, want an error")
	}
	if err := Predict(srv.URL, "wrong"); err == nil {
		t.Error("Predict of class 1 = nil, want an error")
	}

	n.Store(0)
	stop := Load(3, func() error { return Predict(srv.URL, "iris") })
	WaitFor(t, 10*time.Second, "some requests", func() bool { return n.Load() >= 20 })
	ok, failed, errs := stop()
	if total := n.Load(); ok+failed != total || ok == 0 || failed == 0 {
		t.Errorf("Load: %d ok, %d failed; the server saw %d, half of them 503", ok, failed, total)
	}
	if len(errs) == 0 || len(errs) > 5 {
		t.Errorf("Load kept %d failures, want 1 to 5", len(errs))
	}
}
