package gateway

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
)

// benchBackend is a replica stand-in answering a fixed OIP response, so
// that the benchmarks measure the hop, not the model.
func benchBackend(b *testing.B) *httptest.Server {
	resp := []byte(`{"model_name":"iris","model_version":"1","outputs":[{"name":"label","datatype":"INT64","shape":[1],"data":[0]}]}`)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(resp)
	}))
	b.Cleanup(s.Close)
	return s
}

func benchPost(b *testing.B, url string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	body := []byte(irisBody)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	defer func() {
		// CPU time of the whole process (client, gateway and backend) per
		// request: steadier than ns/op on a shared machine.
		b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	}()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// processCPU returns the process's user+system CPU time in ns.
func processCPU() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkDirect is the baseline: the client straight to the backend.
func BenchmarkDirect(b *testing.B) {
	be := benchBackend(b)
	benchPost(b, be.URL+"/v2/models/iris/infer")
}

// BenchmarkProxy is the same client through the gateway; the difference
// with BenchmarkDirect is the cost of the hop (allocations included:
// those of client and backend are in both).
func BenchmarkProxy(b *testing.B) {
	be := benchBackend(b)
	tg := startGateway(b, Config{ProbeInterval: -1}, &Table{Models: map[string]Model{"iris": {
		Revisions: []Revision{{Name: "r1", Weight: 1, Replicas: []Replica{{HTTP: be.Listener.Addr().String()}}}},
	}}})
	benchPost(b, tg.URL+"/v2/models/iris/infer")
}

// BenchmarkProxyLean is BenchmarkProxy with the gateway's REST on
// package h1's server (Config.LeanHTTP).
func BenchmarkProxyLean(b *testing.B) {
	leanHTTP = true
	defer func() { leanHTTP = false }()
	BenchmarkProxy(b)
}

// BenchmarkProxyStdTransport is BenchmarkProxy with net/http's
// Transport to the replica instead of the gateway's own client.
func BenchmarkProxyStdTransport(b *testing.B) {
	be := benchBackend(b)
	tg := startGateway(b, Config{ProbeInterval: -1, Transport: newTransport()}, &Table{Models: map[string]Model{"iris": {
		Revisions: []Revision{{Name: "r1", Weight: 1, Replicas: []Replica{{HTTP: be.Listener.Addr().String()}}}},
	}}})
	benchPost(b, tg.URL+"/v2/models/iris/infer")
}

// BenchmarkHandler measures the gateway's handler alone (no client-side
// connection to the gateway), the allocation count of the proxy path.
func BenchmarkHandler(b *testing.B) {
	be := benchBackend(b)
	tg := startGateway(b, Config{ProbeInterval: -1}, &Table{Models: map[string]Model{"iris": {
		Revisions: []Revision{{Name: "r1", Weight: 1, Replicas: []Replica{{HTTP: be.Listener.Addr().String()}}}},
	}}})
	h := tg.Handler()
	body := []byte(irisBody)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v2/models/iris/infer", bytes.NewReader(body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("status %d", w.Code)
		}
	}
}
