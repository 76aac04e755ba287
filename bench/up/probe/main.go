// Command probe measures `shoal up`: the time from starting it to the
// first successful prediction through its gateway (each run on a fresh
// state directory), and the latency of the first request after its
// deployment scaled to zero. It is run by bench/up/run.sh.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

const request = `{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}`

const zeroManifest = `apiVersion: shoal.dev/v1alpha1
kind: ModelDeployment
metadata:
  name: iris
spec:
  model:
    uri: %s
  scaling:
    minReplicas: 0
    scaleToZeroGracePeriod: 1s
    stableWindow: 6s
`

func main() {
	bin := flag.String("shoal", "shoal", "shoal `binary`")
	runs := flag.Int("runs", 5, "measurements of each kind")
	flag.Parse()
	if err := run(*bin, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
}

func run(bin string, runs int) error {
	var startup, zero []time.Duration
	for range runs {
		d, err := firstPrediction(bin)
		if err != nil {
			return err
		}
		startup = append(startup, d)
		fmt.Fprintf(os.Stderr, "up -> first prediction: %v\n", d.Round(time.Millisecond))
	}
	zero, err := fromZero(bin, runs)
	if err != nil {
		return err
	}
	fmt.Printf("| measure | runs | median | min | max |\n|---|---|---|---|---|\n")
	for _, m := range []struct {
		name string
		ds   []time.Duration
	}{{"`shoal up` to first successful prediction", startup}, {"first response after scale to zero", zero}} {
		slices.Sort(m.ds)
		fmt.Printf("| %s | %d | %v | %v | %v |\n", m.name, len(m.ds), ms(m.ds[len(m.ds)/2]), ms(m.ds[0]), ms(m.ds[len(m.ds)-1]))
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

type upProc struct {
	cmd      *exec.Cmd
	gw, ctl  string
	stateDir string
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startUp(bin string, args ...string) (*upProc, error) {
	state, err := os.MkdirTemp("", "shoal-bench-up-")
	if err != nil {
		return nil, err
	}
	gw, grpc, ctl := freeAddr(), freeAddr(), freeAddr()
	cmd := exec.Command(bin, append([]string{"up", "-state", state, "-http", gw, "-grpc", grpc, "-control", ctl, "-log-level", "warn"}, args...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &upProc{cmd: cmd, gw: "http://" + gw, ctl: "http://" + ctl, stateDir: state}, nil
}

// stop ends shoal up with SIGTERM (it stops its replicas) and removes its
// state directory.
func (u *upProc) stop() {
	u.cmd.Process.Signal(syscall.SIGTERM)
	u.cmd.Wait()
	os.RemoveAll(u.stateDir)
}

var client = &http.Client{Timeout: 30 * time.Second}

func predict(gw string) bool {
	resp, err := client.Post(gw+"/v2/models/iris/infer", "application/json", strings.NewReader(request))
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == 200
}

// firstPrediction starts shoal up with no argument (the built-in iris
// deployment) and polls a prediction every 2ms until one succeeds.
func firstPrediction(bin string) (time.Duration, error) {
	start := time.Now()
	u, err := startUp(bin)
	if err != nil {
		return 0, err
	}
	defer u.stop()
	for time.Since(start) < 30*time.Second {
		if predict(u.gw) {
			return time.Since(start), nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return 0, fmt.Errorf("no prediction within 30s")
}

// fromZero deploys iris with scale to zero after 1s, and n times waits for
// zero replicas, then times one request.
func fromZero(bin string, n int) ([]time.Duration, error) {
	dir, err := os.MkdirTemp("", "shoal-bench-zero-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	// The example repository, extracted by a first shoal up.
	u0, err := startUp(bin)
	if err != nil {
		return nil, err
	}
	repo := filepath.Join(dir, "models")
	deadline := time.Now().Add(30 * time.Second)
	for !predict(u0.gw) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	err = os.CopyFS(repo, os.DirFS(filepath.Join(u0.stateDir, "examples")))
	u0.stop()
	if err != nil {
		return nil, err
	}
	manifest := filepath.Join(dir, "iris.yaml")
	if err := os.WriteFile(manifest, fmt.Appendf(nil, zeroManifest, repo), 0o644); err != nil {
		return nil, err
	}
	u, err := startUp(bin, manifest)
	if err != nil {
		return nil, err
	}
	defer u.stop()
	var out []time.Duration
	for range n {
		deadline := time.Now().Add(60 * time.Second)
		for !scaledToZero(u.ctl) {
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("not scaled to zero within 60s")
			}
			time.Sleep(50 * time.Millisecond)
		}
		start := time.Now()
		if !predict(u.gw) {
			return nil, fmt.Errorf("request from zero failed")
		}
		d := time.Since(start)
		fmt.Fprintf(os.Stderr, "first response from zero: %v\n", d.Round(time.Millisecond))
		out = append(out, d)
	}
	return out, nil
}

func scaledToZero(ctl string) bool {
	resp, err := client.Get(ctl + "/v1/deployments/iris/replicas")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var reps []json.RawMessage
	if json.NewDecoder(resp.Body).Decode(&reps) != nil {
		return false
	}
	return len(reps) == 0
}
