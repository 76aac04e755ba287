package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/shoal-ml/shoal/internal/oip/inferencepb"
)

// TestProxyPaths sends every routed REST path and the gRPC RPCs through
// the gateway to a real replica and compares with the replica's own
// answer.
func TestProxyPaths(t *testing.T) {
	rep := startReplica(t, "1")
	tg := startGateway(t, Config{}, oneRevision(rep))
	direct := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, "http://"+rep.HTTP+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/v2/models/iris/infer", irisBody},
		{"POST", "/v2/models/iris/versions/1/infer", irisBody},
		{"POST", "/v2/models/iris/versions/9/infer", irisBody},
		{"POST", "/v2/models/iris/infer", `{"inputs": nonsense`},
		{"GET", "/v2/models/iris", ""},
		{"GET", "/v2/models/iris/ready", ""},
		{"POST", "/v1/models/iris:predict", `{"instances":[[5.1,3.5,1.4,0.2]]}`},
		{"POST", "/predict", `{"instances":[[5.1,3.5,1.4,0.2],[6.7,3.0,5.2,2.3]]}`},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, tg.URL+tc.path, strings.NewReader(tc.body))
			resp, err := tg.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			wantCode, want := direct(tc.method, tc.path, tc.body)
			if resp.StatusCode != wantCode || string(b) != want {
				t.Errorf("via gateway: %d %s\ndirect: %d %s", resp.StatusCode, b, wantCode, want)
			}
			if got := resp.Header.Get(HeaderRevision); got != "r1" {
				t.Errorf("%s = %q, want r1", HeaderRevision, got)
			}
		})
	}
	for _, tc := range []struct {
		path string
		code int
	}{
		{"/v2/models/nope/infer", 404},
		{"/v2/health/ready", 200},
		{"/v2/health/live", 200},
		{"/etc/passwd", 404},
	} {
		req, _ := http.NewRequest("GET", tg.URL+tc.path, nil)
		if strings.HasSuffix(tc.path, "infer") {
			req.Method = "POST"
		}
		resp, err := tg.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !json.Valid(b) {
			t.Errorf("%s = %d %s, want %d and JSON", tc.path, resp.StatusCode, b, tc.code)
		}
	}

	c := inferencepb.NewGRPCInferenceServiceClient(tg.GRPC)
	ctx := context.Background()
	res, err := c.ModelInfer(ctx, &inferencepb.ModelInferRequest{
		ModelName: "iris",
		Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{
			Name: "input", Datatype: "FP32", Shape: []int64{1, 4},
			Contents: &inferencepb.InferTensorContents{Fp32Contents: []float32{5.1, 3.5, 1.4, 0.2}},
		}},
	})
	if err != nil {
		t.Fatalf("gRPC ModelInfer: %v", err)
	}
	if res.ModelName != "iris" || len(res.Outputs) == 0 {
		t.Errorf("gRPC ModelInfer = %v", res)
	}
	if r, err := c.ModelReady(ctx, &inferencepb.ModelReadyRequest{Name: "iris"}); err != nil || !r.Ready {
		t.Errorf("gRPC ModelReady = %v, %v", r, err)
	}
	if md, err := c.ModelMetadata(ctx, &inferencepb.ModelMetadataRequest{Name: "iris"}); err != nil || md.Platform != "xgboost" {
		t.Errorf("gRPC ModelMetadata = %v, %v", md, err)
	}
	if _, err := c.ModelReady(ctx, &inferencepb.ModelReadyRequest{Name: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("gRPC ModelReady(nope) = %v, want NotFound", err)
	}
	if r, err := c.ServerReady(ctx, &inferencepb.ServerReadyRequest{}); err != nil || !r.Ready {
		t.Errorf("gRPC ServerReady = %v, %v", r, err)
	}
}

// twoRevisions is iris with revisions "stable" and "canary" weighted
// 80/20, each with its own replicas.
func twoRevisions(stable, canary []*testReplica, ws, wc int) *Table {
	rev := func(name string, w int, reps []*testReplica) Revision {
		r := Revision{Name: name, Weight: w}
		for _, rep := range reps {
			r.Replicas = append(r.Replicas, rep.replica())
		}
		return r
	}
	return &Table{Models: map[string]Model{"iris": {Revisions: []Revision{rev("stable", ws, stable), rev("canary", wc, canary)}}}}
}

// TestWeightedSplit checks that 10,000 requests split within 2% of the
// configured weights.
func TestWeightedSplit(t *testing.T) {
	a, b := startReplica(t, "1"), startReplica(t, "2")
	tg := startGateway(t, Config{}, twoRevisions([]*testReplica{a}, []*testReplica{b}, 80, 20))
	const n, workers = 10000, 8
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := map[string]int{}
			for i := w; i < n; i += workers {
				rev, version := tg.infer(t)
				if (rev == "stable") != (version == "1") {
					t.Errorf("revision %s answered with version %s", rev, version)
					return
				}
				local[rev]++
			}
			mu.Lock()
			for k, v := range local {
				counts[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	for rev, want := range map[string]float64{"stable": 0.8, "canary": 0.2} {
		got := float64(counts[rev]) / n
		if got < want-0.02 || got > want+0.02 {
			t.Errorf("%s took %.3f of %d requests, want %.2f±0.02 (counts %v)", rev, got, n, want, counts)
		}
	}
	if got := tg.metric(t, `shoal_gateway_model_requests_total{model="iris"}`); got != n {
		t.Errorf("shoal_gateway_model_requests_total = %v, want %d", got, n)
	}
}

// TestPinAndSticky checks x-shoal-revision pinning and sticky keys: every
// key sees one replica (three replicas of one revision, told apart by the
// model version they serve), and the keys spread over all of them.
func TestPinAndSticky(t *testing.T) {
	reps := []*testReplica{startReplica(t, "1"), startReplica(t, "2"), startReplica(t, "3")}
	canary := startReplica(t, "7")
	table := twoRevisions(reps, []*testReplica{canary}, 1, 0)
	m := table.Models["iris"]
	m.StickyHeader = "X-User"
	table.Models["iris"] = m
	tg := startGateway(t, Config{}, table)

	for range 20 {
		if rev, v := tg.infer(t, HeaderRevision, "canary"); rev != "canary" || v != "7" {
			t.Fatalf("pinned to canary: answered by %s version %s", rev, v)
		}
		if rev, _ := tg.infer(t); rev != "stable" {
			t.Fatalf("weight 0 canary took unpinned traffic")
		}
	}
	if code, _, b := tg.post(t, "/v2/models/iris/infer", irisBody, HeaderRevision, "nope"); code != 404 {
		t.Errorf("pinned to a missing revision: %d %s, want 404", code, b)
	}

	seen := map[string]bool{}
	for u := range 30 {
		user := fmt.Sprint("user-", u)
		_, first := tg.infer(t, "X-User", user)
		seen[first] = true
		for range 5 {
			if _, v := tg.infer(t, "X-User", user); v != first {
				t.Fatalf("%s moved from replica version %s to %s", user, first, v)
			}
		}
	}
	if len(seen) != 3 {
		t.Errorf("30 sticky keys reached replicas %v, want all 3", seen)
	}
}

// TestMirror mirrors all traffic to a shadow revision and checks that the
// comparison is counted, and that the client only sees the primary.
func TestMirror(t *testing.T) {
	primary, shadow := startReplica(t, "1"), startReplica(t, "2")
	table := twoRevisions([]*testReplica{primary}, []*testReplica{shadow}, 1, 0)
	m := table.Models["iris"]
	m.Mirror = &Mirror{Revision: "canary", Percent: 100}
	table.Models["iris"] = m
	tg := startGateway(t, Config{}, table)

	const n = 50
	for range n {
		if rev, v := tg.infer(t); rev != "stable" || v != "1" {
			t.Fatalf("answered by %s version %s, want the primary", rev, v)
		}
	}
	// The shadow serves version 2 only: a request for version 1 is a
	// status mismatch.
	for range n {
		if code, _, b := tg.post(t, "/v2/models/iris/versions/1/infer", irisBody); code != 200 {
			t.Fatalf("versions/1 = %d %s", code, b)
		}
	}
	// gRPC: the same comparison; version 1 is a NOT_FOUND on the shadow.
	cl := inferencepb.NewGRPCInferenceServiceClient(tg.GRPC)
	for _, version := range []string{"", "1"} {
		for range n {
			res, err := cl.ModelInfer(context.Background(), &inferencepb.ModelInferRequest{
				ModelName: "iris", ModelVersion: version,
				Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{
					Name: "input", Datatype: "FP32", Shape: []int64{1, 4},
					Contents: &inferencepb.InferTensorContents{Fp32Contents: []float32{5.1, 3.5, 1.4, 0.2}},
				}},
			})
			if err != nil || res.ModelVersion != "1" {
				t.Fatalf("gRPC ModelInfer = %v, %v; want the primary", res, err)
			}
		}
	}
	waitFor(t, func() bool {
		return tg.metric(t, `shoal_gateway_mirror_total{model="iris",result="match",revision="canary"}`) == 2*n &&
			tg.metric(t, `shoal_gateway_mirror_total{model="iris",result="status_mismatch",revision="canary"}`) == 2*n
	})
	if d := tg.metric(t, `shoal_gateway_mirror_output_difference_count{model="iris",revision="canary"}`); d != 2*n {
		t.Errorf("output differences observed %v, want %d", d, 2*n)
	}
	if d := tg.metric(t, `shoal_gateway_mirror_output_difference_sum{model="iris",revision="canary"}`); d != 0 {
		t.Errorf("sum of output differences %v, want 0 (same model)", d)
	}
}

// TestEjectFailingReplica stops one of two replicas with retries and
// probes off: the failures it causes eject it, and then every request
// succeeds.
func TestEjectFailingReplica(t *testing.T) {
	a, b := startReplica(t, "1"), startReplica(t, "2")
	tg := startGateway(t, Config{Retries: -1, ProbeInterval: -1}, oneRevision(a, b))
	b.Stop()
	failed := 0
	for range 200 {
		code, _, _ := tg.post(t, "/v2/models/iris/infer", irisBody)
		if code != 200 {
			if code != http.StatusBadGateway {
				t.Fatalf("failed request: %d, want 502", code)
			}
			failed++
		}
	}
	if failed != 5 {
		t.Errorf("%d requests failed, want 5 (the ejection threshold)", failed)
	}
	st := tg.Stats()[0]
	for _, r := range st.Replicas {
		if want := r.Addr == a.HTTP; r.Available != want {
			t.Errorf("replica %s available = %v, want %v", r.Addr, r.Available, want)
		}
	}
	if got := tg.metric(t, `shoal_gateway_ejections_total{cause="failures",model="iris",revision="r1"}`); got != 1 {
		t.Errorf("ejections = %v, want 1", got)
	}
}

// TestRetryKilledReplica kills one of two replicas under load: retries on
// the other replica hide it from every client.
func TestRetryKilledReplica(t *testing.T) {
	a, b := startReplica(t, "1"), startReplica(t, "2")
	tg := startGateway(t, Config{ProbeInterval: -1}, oneRevision(a, b))
	var wg sync.WaitGroup
	var errs atomic.Int32
	var killed sync.Once
	var sent atomic.Int32
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if sent.Add(1) == 50 {
					killed.Do(b.Stop)
				}
				if code, _, body := tg.post(t, "/v2/models/iris/infer", irisBody); code != 200 {
					t.Errorf("client saw %d %s", code, body)
					errs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if errs.Load() != 0 {
		t.Errorf("%d client-visible errors", errs.Load())
	}
	if got := tg.metric(t, `shoal_gateway_retries_total{model="iris",result="sent"}`); got == 0 {
		t.Errorf("no retry counted; the killed replica was never tried")
	}
}

// TestGRPCPinAndRetry pins a gRPC call with metadata and retries it past
// a stopped replica.
func TestGRPCPinAndRetry(t *testing.T) {
	a, b, c := startReplica(t, "1"), startReplica(t, "2"), startReplica(t, "3")
	tg := startGateway(t, Config{ProbeInterval: -1}, twoRevisions([]*testReplica{a, b}, []*testReplica{c}, 1, 0))
	cl := inferencepb.NewGRPCInferenceServiceClient(tg.GRPC)
	req := &inferencepb.ModelInferRequest{
		ModelName: "iris",
		Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{
			Name: "input", Datatype: "FP32", Shape: []int64{1, 4},
			Contents: &inferencepb.InferTensorContents{Fp32Contents: []float32{5.1, 3.5, 1.4, 0.2}},
		}},
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-shoal-revision", "canary")
	for range 10 {
		res, err := cl.ModelInfer(ctx, req)
		if err != nil || res.ModelVersion != "3" {
			t.Fatalf("pinned ModelInfer = %v, %v; want version 3", res, err)
		}
	}
	b.Stop()
	for range 50 {
		res, err := cl.ModelInfer(context.Background(), req)
		if err != nil || res.ModelVersion != "1" {
			t.Fatalf("ModelInfer with a stopped replica = %v, %v; want version 1", res, err)
		}
	}
}
