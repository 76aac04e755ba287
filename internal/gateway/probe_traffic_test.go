package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestProbesWithSplitAndMirror sends many concurrent requests through a
// split with a 100% mirror while readiness probes run every millisecond,
// all to the same httptest replicas over one upstream transport: every
// request must be answered (a request left waiting for an answer the
// replica never got would end in 504 at the model's timeout).
func TestProbesWithSplitAndMirror(t *testing.T) {
	replica := func() Replica {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"model_name":"iris","outputs":[{"name":"y","datatype":"FP32","shape":[1],"data":[1]}]}`)
		}))
		t.Cleanup(s.Close)
		return Replica{HTTP: s.Listener.Addr().String()}
	}
	table := &Table{Models: map[string]Model{"iris": {
		Timeout: Duration(5 * time.Second),
		Revisions: []Revision{
			{Name: "old", Weight: 30, Replicas: []Replica{replica()}},
			{Name: "new", Weight: 70, Replicas: []Replica{replica(), replica()}},
		},
		Mirror: &Mirror{Revision: "old", Percent: 100},
	}}}
	tg := startGateway(t, Config{ProbeInterval: time.Millisecond, Eject: ejectNever()}, table)
	const workers, each = 16, 100
	var wg sync.WaitGroup
	errs := make(chan string, workers*each)
	for range workers {
		wg.Go(func() {
			for range each {
				resp, err := tg.client.Post(tg.URL+"/v2/models/iris/infer", "application/json", strings.NewReader(irisBody))
				if err != nil {
					errs <- err.Error()
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- resp.Status + " " + string(b)
					return // one stuck request is enough: stop waiting
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	n := 0
	for e := range errs {
		if n++; n <= 5 {
			t.Errorf("infer: %s", e)
		}
	}
	if n > 0 {
		t.Errorf("%d workers saw a failed request", n)
	}
}
