package gateway

import (
	"context"
	"github.com/shoal-ml/shoal/internal/balance"
	"github.com/shoal-ml/shoal/internal/oip/inferencepb"
	"google.golang.org/grpc"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestHedge puts a slow and a fast replica behind a model that hedges
// after 20ms: no request waits for the slow one, and the slow one's
// abandoned requests are cancelled.
func TestHedge(t *testing.T) {
	var cancelled atomic.Int32
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // then the server notices a closed connection
		select {
		case <-r.Context().Done():
			cancelled.Add(1)
		case <-time.After(2 * time.Second):
			w.Write([]byte(`{"from":"slow"}`))
		}
	}))
	defer slow.Close()
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"from":"fast"}`))
	}))
	defer fast.Close()
	table := &Table{Models: map[string]Model{"m": {
		Hedge: &Hedge{After: Duration(20 * time.Millisecond)},
		Revisions: []Revision{{Name: "r", Weight: 1, Replicas: []Replica{
			{HTTP: slow.Listener.Addr().String()}, {HTTP: fast.Listener.Addr().String()},
		}}},
	}}}
	tg := startGateway(t, Config{ProbeInterval: -1, Eject: ejectNever()}, table)
	for i := range 20 {
		start := time.Now()
		code, _, b := tg.post(t, "/v2/models/m/infer", "{}")
		if code != 200 || string(b) != `{"from":"fast"}` {
			t.Fatalf("request %d = %d %s, want the fast replica's answer", i, code, b)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("request %d took %v: it waited for the slow replica", i, d)
		}
	}
	hedges := tg.metric(t, `shoal_gateway_hedges_total{model="m"}`)
	if hedges == 0 {
		t.Fatal("no request was hedged")
	}
	waitFor(t, func() bool { return float64(cancelled.Load()) == hedges })
}

// ejectNever keeps every replica in, so that a test sees the policy alone.
func ejectNever() (c balance.EjectConfig) {
	c.ConsecutiveFailures = -1
	c.LatencyFactor = -1
	return c
}

func TestLatencyPercentile(t *testing.T) {
	var l latencyRing
	for i := range 31 {
		l.add(time.Duration(i) * time.Millisecond)
	}
	if p := l.percentile(95); p != 0 {
		t.Errorf("percentile with 31 samples = %v, want 0 (too few)", p)
	}
	for i := 31; i < 1000; i++ {
		l.add(time.Duration(i) * time.Millisecond)
	}
	// The ring holds the last 256: 744ms..999ms.
	if p := l.percentile(50); p != 872*time.Millisecond {
		t.Errorf("p50 = %v, want 872ms", p)
	}
	if p := l.percentile(99.9); p != 999*time.Millisecond {
		t.Errorf("p99.9 = %v, want 999ms", p)
	}
}

// slowInfer is a gRPC replica stand-in whose ModelInfer answers after
// delay (or when cancelled), naming itself in model_version. A real
// shoal serve cannot be made slow on demand.
type slowInfer struct {
	inferencepb.UnimplementedGRPCInferenceServiceServer
	name      string
	delay     time.Duration
	cancelled atomic.Int32
}

func (s *slowInfer) ModelInfer(ctx context.Context, req *inferencepb.ModelInferRequest) (*inferencepb.ModelInferResponse, error) {
	select {
	case <-ctx.Done():
		s.cancelled.Add(1)
		return nil, ctx.Err()
	case <-time.After(s.delay):
		return &inferencepb.ModelInferResponse{ModelName: req.ModelName, ModelVersion: s.name}, nil
	}
}

func startSlowInfer(t *testing.T, name string, delay time.Duration) (*slowInfer, string) {
	s := &slowInfer{name: name, delay: delay}
	gs := grpc.NewServer()
	inferencepb.RegisterGRPCInferenceServiceServer(gs, s)
	l := listen(t)
	go gs.Serve(l)
	t.Cleanup(gs.Stop)
	return s, l.Addr().String()
}

// TestHedgeGRPC is TestHedge for gRPC ModelInfer.
func TestHedgeGRPC(t *testing.T) {
	slow, slowAddr := startSlowInfer(t, "slow", 2*time.Second)
	_, fastAddr := startSlowInfer(t, "fast", 0)
	table := &Table{Models: map[string]Model{"m": {
		Hedge: &Hedge{After: Duration(20 * time.Millisecond)},
		Revisions: []Revision{{Name: "r", Weight: 1, Replicas: []Replica{
			{HTTP: "127.0.0.1:1", GRPC: slowAddr}, {HTTP: "127.0.0.1:2", GRPC: fastAddr},
		}}},
	}}}
	tg := startGateway(t, Config{ProbeInterval: -1, Eject: ejectNever()}, table)
	cl := inferencepb.NewGRPCInferenceServiceClient(tg.GRPC)
	for i := range 20 {
		start := time.Now()
		res, err := cl.ModelInfer(context.Background(), &inferencepb.ModelInferRequest{ModelName: "m"})
		if err != nil || res.ModelVersion != "fast" {
			t.Fatalf("call %d = %v, %v; want the fast replica's answer", i, res, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("call %d took %v: it waited for the slow replica", i, d)
		}
	}
	hedges := tg.metric(t, `shoal_gateway_hedges_total{model="m"}`)
	if hedges == 0 {
		t.Fatal("no call was hedged")
	}
	waitFor(t, func() bool { return float64(slow.cancelled.Load()) == hedges })
}
