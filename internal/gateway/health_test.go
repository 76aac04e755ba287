package gateway

import (
	"context"
	"errors"
	"github.com/shoal-ml/shoal/internal/balance"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestProbeUnloadedModel unloads the model on one of two real replicas
// (repository API): the readiness probe takes it out, and every request
// then goes to the other one; loading it again brings it back.
func TestProbeUnloadedModel(t *testing.T) {
	a, b := startReplica(t, "1"), startReplica(t, "2")
	tg := startGateway(t, Config{ProbeInterval: 20 * time.Millisecond, Retries: -1}, oneRevision(a, b))
	repo := func(op string) {
		resp, err := http.Post("http://"+b.HTTP+"/v2/repository/models/iris/"+op, "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", op, resp.StatusCode)
		}
	}
	available := func(addr string) bool {
		for _, r := range tg.Stats()[0].Replicas {
			if r.Addr == addr {
				return r.Available
			}
		}
		return false
	}
	repo("unload")
	waitFor(t, func() bool { return !available(b.HTTP) })
	for range 50 {
		if _, v := tg.infer(t); v != "1" {
			t.Fatalf("answered by version %s: the unloaded replica still takes traffic", v)
		}
	}
	repo("load")
	waitFor(t, func() bool { return available(b.HTTP) })
}

// TestLatencyEjection puts one slow replica beside two fast ones: the
// latency judgement of the probe loop ejects it.
func TestLatencyEjection(t *testing.T) {
	handler := func(delay time.Duration) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost {
				time.Sleep(delay) // the replica's service time
			}
			w.Write([]byte(`{}`))
		})
	}
	slow := httptest.NewServer(handler(80 * time.Millisecond))
	defer slow.Close()
	fast1, fast2 := httptest.NewServer(handler(0)), httptest.NewServer(handler(0))
	defer fast1.Close()
	defer fast2.Close()
	var reps []Replica
	for _, s := range []*httptest.Server{slow, fast1, fast2} {
		reps = append(reps, Replica{HTTP: s.Listener.Addr().String()})
	}
	tg := startGateway(t, Config{ProbeInterval: 20 * time.Millisecond, Eject: ejectLatency()},
		&Table{Models: map[string]Model{"m": {Revisions: []Revision{{Name: "r", Weight: 1, Replicas: reps}}}}})
	slowAddr := reps[0].HTTP
	ejected := func() bool {
		for _, r := range tg.Stats()[0].Replicas {
			if r.Addr == slowAddr {
				return !r.Available
			}
		}
		return false
	}
	for i := 0; !ejected(); i++ {
		if i > 2000 {
			t.Fatal("the slow replica was never ejected")
		}
		if code, _, b := tg.post(t, "/v2/models/m/infer", "{}"); code != 200 {
			t.Fatalf("%d %s", code, b)
		}
	}
	if got := tg.metric(t, `shoal_gateway_ejections_total{cause="latency",model="m",revision="r"}`); got != 1 {
		t.Errorf("latency ejections = %v, want 1", got)
	}
}

func ejectLatency() (c balance.EjectConfig) {
	c.LatencyFactor = 4
	c.MinLatency = 20 * time.Millisecond
	c.BaseEjection = time.Minute
	return c
}

// TestFileSourceReload checks that FileSource applies a changed file,
// keeps the last good table when the file breaks, and reports why.
func TestFileSourceReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "routes.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("models: {a: {}}")
	tick := make(chan time.Time)
	errs := make(chan error, 10)
	tables := make(chan *Table, 10)
	src := &FileSource{Path: path, Tick: tick, OnError: func(err error) { errs <- err }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Watch(ctx, func(t *Table) { tables <- t }) }()
	names := func(tb *Table) string {
		s := ""
		for n := range tb.Models {
			s += n
		}
		return s
	}
	if got := names(<-tables); got != "a" {
		t.Fatalf("first table: %q", got)
	}
	write("models: {b: {}}")
	tick <- time.Now()
	if got := names(<-tables); got != "b" {
		t.Fatalf("reloaded table: %q", got)
	}
	write("models: {c: {policy: nope}}")
	tick <- time.Now()
	if err := <-errs; !errors.Is(err, ErrBadTable) {
		t.Errorf("OnError(%v), want ErrBadTable", err)
	}
	tick <- time.Now() // unchanged broken file: no second report, no table
	tick <- time.Now()
	select {
	case tb := <-tables:
		t.Errorf("a broken file produced table %q", names(tb))
	case err := <-errs:
		t.Errorf("the same broken file reported again: %v", err)
	default:
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Watch = %v", err)
	}
	// A missing file fails the first load.
	if err := (&FileSource{Path: filepath.Join(t.TempDir(), "none")}).Watch(context.Background(), func(*Table) {}); err == nil {
		t.Error("Watch of a missing file succeeded")
	}
}
