// Package replicatest holds what the tests of the replica backends
// (process, docker) and of shoal up share: the example model repository,
// polling for a condition, iris predictions and a load of them. It is for
// tests only.
package replicatest

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-ml/shoal/examples"
)

// ModelDir extracts the example model repository (model iris) into a new
// directory of the test and returns it.
func ModelDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	root, err := fs.Sub(examples.Models, "models")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(dir, root); err != nil {
		t.Fatal(err)
	}
	return dir
}

// WaitFor polls cond every 20ms until it holds, and fails the test, naming
// what it waited for, when d passes first. Its conditions ask child
// processes or the Docker engine, hence the slower pace than
// servetest.WaitFor's.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// IrisRequest is an OIP inference request for the example iris model; its
// one row is of class 0.
const IrisRequest = `{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}`

var client = &http.Client{Timeout: 30 * time.Second}

// Predict sends IrisRequest to model at base (http://host:port) and
// returns an error unless the answer is 200 with class 0.
func Predict(base, model string) error {
	resp, err := client.Post(base+"/v2/models/"+model+"/infer", "application/json", strings.NewReader(IrisRequest))
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(`"data":[0]`)) {
		return fmt.Errorf("predict: %s %s", resp.Status, b)
	}
	return nil
}

// Load calls predict from n goroutines, each in a loop, until stop is
// called; stop waits for them and returns the counts of successes and
// failures and the first five failures.
func Load(n int, predict func() error) (stop func() (ok, failed int64, errs []string)) {
	var okN, failN atomic.Int64
	var mu sync.Mutex
	var first []string
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if err := predict(); err != nil {
					failN.Add(1)
					mu.Lock()
					if len(first) < 5 {
						first = append(first, err.Error())
					}
					mu.Unlock()
				} else {
					okN.Add(1)
				}
			}
		})
	}
	return func() (int64, int64, []string) {
		close(done)
		wg.Wait()
		return okN.Load(), failN.Load(), first
	}
}
