package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-ml/shoal/api/v1alpha1"
	"github.com/shoal-ml/shoal/examples"
	"github.com/shoal-ml/shoal/internal/control"
	"github.com/shoal-ml/shoal/internal/replica/replicatest"
	"github.com/shoal-ml/shoal/internal/serve/servetest"
)

// These tests run `shoal up` as a real process, with its replicas as real
// `shoal serve` processes, and drive it through the control API and the
// gateway.

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// shoalBinary builds the shoal binary once per test run.
func shoalBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "shoal-up-test-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "shoal")
		out, err := exec.Command("go", "build", "-o", builtBin, "github.com/shoal-ml/shoal/cmd/shoal").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// up is a running `shoal up`.
type up struct {
	t            *testing.T
	cmd          *exec.Cmd
	exited       chan struct{}
	state        string
	gw, ctl      string // base URLs
	gwAddr, grpc string
	ctlAddr      string
	stderr       *servetest.SyncBuffer
}

// startUp starts `shoal up` on a state directory (new ports unless prev
// is given, whose ports it reuses) and waits for its control API.
func startUp(t *testing.T, state string, prev *up, args ...string) *up {
	t.Helper()
	u := &up{t: t, state: state, stderr: &servetest.SyncBuffer{}, exited: make(chan struct{})}
	if prev != nil {
		u.gwAddr, u.grpc, u.ctlAddr = prev.gwAddr, prev.grpc, prev.ctlAddr
	} else {
		u.gwAddr, u.grpc, u.ctlAddr = freeAddr(t), freeAddr(t), freeAddr(t)
	}
	u.gw, u.ctl = "http://"+u.gwAddr, "http://"+u.ctlAddr
	all := append([]string{"up", "-state", state, "-http", u.gwAddr, "-grpc", u.grpc, "-control", u.ctlAddr, "-grace-period", "3s"}, args...)
	u.cmd = exec.Command(shoalBinary(t), all...)
	u.cmd.Stderr = u.stderr
	if err := u.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { u.cmd.Wait(); close(u.exited) }()
	t.Cleanup(func() {
		if t.Failed() {
			var evs []struct {
				Time            time.Time
				Reason, Message string
			}
			u.getJSON("/v1/deployments/iris/events", &evs)
			for _, e := range evs {
				t.Logf("event %s %s: %s", e.Time.Format(time.TimeOnly), e.Reason, e.Message)
			}
		}
		u.kill()
		// Replicas outlive a killed control plane: stop what is recorded.
		files, _ := filepath.Glob(filepath.Join(state, "replicas", "*.json"))
		for _, f := range files {
			var r control.Replica
			if b, err := os.ReadFile(f); err == nil && json.Unmarshal(b, &r) == nil && r.PID > 0 {
				syscall.Kill(-r.PID, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			t.Logf("shoal up stderr:\n%s", u.stderr.String())
		}
	})
	waitFor(t, 20*time.Second, "control API", func() bool {
		resp, err := http.Get(u.ctl + "/v1/info")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return u
}

func (u *up) kill() {
	u.cmd.Process.Kill()
	<-u.exited
}

// waitFor is shared with the replica backends' tests.
var waitFor = replicatest.WaitFor

func (u *up) getJSON(path string, out any) error {
	resp, err := http.Get(u.ctl + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s %s", path, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (u *up) deployment(name string) v1alpha1.ModelDeployment {
	var d v1alpha1.ModelDeployment
	if err := u.getJSON("/v1/deployments/"+name, &d); err != nil {
		u.t.Fatal(err)
	}
	return d
}

func (u *up) replicas(name string) []control.Replica {
	var rs []control.Replica
	if err := u.getJSON("/v1/deployments/"+name+"/replicas", &rs); err != nil {
		u.t.Fatal(err)
	}
	return rs
}

// settled reports whether the deployment runs only its current revision,
// with want ready replicas and no others.
func (u *up) settled(name string, want int) bool {
	d := u.deployment(name)
	cur := control.RevisionName(&d)
	rs := u.replicas(name)
	if len(rs) != want {
		return false
	}
	for _, r := range rs {
		if r.Revision != cur || !r.Ready {
			return false
		}
	}
	return true
}

func (u *up) apply(yamlDoc string) {
	u.t.Helper()
	resp, err := http.Post(u.ctl+"/v1/deployments", "application/yaml", strings.NewReader(yamlDoc))
	if err != nil {
		u.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		u.t.Fatalf("apply: %s %s", resp.Status, b)
	}
}

func (u *up) predict(model string) error { return replicatest.Predict(u.gw, model) }

// load sends requests from n clients until stop is called, which returns
// the counts of successes and failures and the first failures.
func (u *up) load(model string, n int) (stop func() (ok, failed int64, errs []string)) {
	return replicatest.Load(n, func() error { return u.predict(model) })
}

// repoWithManifest extracts the example repository beside a manifest that
// refers to it by a relative path.
func repoWithManifest(t *testing.T, manifest string) string {
	t.Helper()
	dir := t.TempDir()
	root, _ := fs.Sub(examples.Models, "models")
	if err := os.CopyFS(filepath.Join(dir, "models"), root); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "iris.yaml")
	if err := os.WriteFile(f, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

const irisTwo = `apiVersion: shoal.dev/v1alpha1
kind: ModelDeployment
metadata:
  name: iris
spec:
  model:
    uri: models
  scaling:
    minReplicas: 2
    maxReplicas: 2
  rollout:
    maxSurge: "1"
    maxUnavailable: "0"
`

// TestUpDefaultPredictAndRestart: `shoal up` with no argument serves the
// built-in iris model through the gateway; killed with SIGKILL and
// started again on the same state directory, it finds its objects and
// adopts the running replica instead of starting another.
func TestUpDefaultPredictAndRestart(t *testing.T) {
	state := t.TempDir()
	u := startUp(t, state, nil)
	waitFor(t, 20*time.Second, "iris ready", func() bool { return u.settled("iris", 1) })
	if err := u.predict("iris"); err != nil {
		t.Fatal(err)
	}
	// The CLI against it.
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"get"}, 0, "iris   1/1"},
		{[]string{"get", "iris", "-o", "yaml"}, 0, "readyReplicas: 1"},
		{[]string{"describe", "iris"}, 0, "ReplicasReady"},
		{[]string{"predict", "iris", replicatest.IrisRequest}, 0, `"data":[0]`},
		{[]string{"events", "iris"}, 0, "TIME"},
		{[]string{"logs", "iris", "-tail", "5"}, 0, "model ready"},
		{[]string{"get", "nope"}, 1, `"nope"`},
		{[]string{"rollout", "promote", "iris"}, 1, "canary"},
		{[]string{"scale", "iris"}, 2, "usage"},
	} {
		var out, errb bytes.Buffer
		code := Run(t.Context(), append(c.args, "-control", u.ctlAddr), &out, &errb)
		if code != c.code || !strings.Contains(out.String()+errb.String(), c.want) {
			t.Errorf("shoal %q = %d\n%s%s\nwant %d with %q", c.args, code, out.String(), errb.String(), c.code, c.want)
		}
	}

	before := u.replicas("iris")[0]
	u.kill()
	if !alive(before.PID) {
		t.Fatalf("replica pid %d died with the control plane", before.PID)
	}
	u2 := startUp(t, state, u)
	waitFor(t, 20*time.Second, "iris ready after restart", func() bool { return u2.settled("iris", 1) })
	after := u2.replicas("iris")[0]
	if after.ID != before.ID || after.PID != before.PID || !after.Adopted {
		t.Errorf("after restart replica = %+v, want %s pid %d adopted", after, before.ID, before.PID)
	}
	if d := u2.deployment("iris"); d.Metadata.Generation != 1 || d.Spec.Model.URI == "" {
		t.Errorf("object after restart: %+v", d.Metadata)
	}
	waitFor(t, 10*time.Second, "gateway routes to the adopted replica", func() bool { return u2.predict("iris") == nil })
}

// TestUpKillReplicaAndRollingUpdate: with two replicas under constant
// load, a replica killed with SIGKILL is restarted while the gateway
// routes around it, and then a rolling update to a new revision replaces
// both replicas; no request fails in either.
func TestUpKillReplicaAndRollingUpdate(t *testing.T) {
	manifest := repoWithManifest(t, irisTwo)
	u := startUp(t, t.TempDir(), nil, manifest)
	waitFor(t, 20*time.Second, "two ready replicas", func() bool { return u.settled("iris", 2) })

	stop := u.load("iris", 4)
	time.Sleep(300 * time.Millisecond) // let load build up before the kill
	victim := u.replicas("iris")[0]
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "killed replica restarted", func() bool {
		for _, r := range u.replicas("iris") {
			if r.ID == victim.ID {
				return r.Ready && r.PID != victim.PID
			}
		}
		return false
	})
	ok, failed, errs := stop()
	t.Logf("kill -9 of a replica: %d requests ok, %d failed", ok, failed)
	if failed != 0 || ok == 0 {
		t.Errorf("kill -9 of a replica: %d ok, %d failed %q; want none failed", ok, failed, errs)
	}

	old := u.deployment("iris")
	oldRev := control.RevisionName(&old)
	stop = u.load("iris", 4)
	u.apply(strings.Replace(irisTwo, "    uri: models\n", "    uri: "+filepath.Join(filepath.Dir(manifest), "models")+"\n  runtime:\n    args: [\"-default-timeout\", \"20s\"]\n", 1))
	waitFor(t, 30*time.Second, "rolling update done", func() bool {
		d := u.deployment("iris")
		return control.RevisionName(&d) != oldRev && u.settled("iris", 2)
	})
	ok, failed, errs = stop()
	t.Logf("rolling update %s -> %s: %d requests ok, %d failed", oldRev, control.RevisionName(new(u.deployment("iris"))), ok, failed)
	if failed != 0 || ok == 0 {
		t.Errorf("rolling update: %d ok, %d failed %q; want none failed", ok, failed, errs)
	}
	var evs []struct{ Reason string }
	if err := u.getJSON("/v1/deployments/iris/events", &evs); err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, e := range evs {
		reasons = append(reasons, e.Reason)
	}
	if got := strings.Join(reasons, ","); !strings.Contains(got, "RolloutStarted") || !strings.Contains(got, "RolloutDone") {
		t.Errorf("events %s, want RolloutStarted and RolloutDone", got)
	}
}

// TestUpScaleToZero: a deployment that may scale to zero goes to zero
// replicas after its grace period; the requests that then arrive are held
// by the activator and all succeed once a replica is ready.
func TestUpScaleToZero(t *testing.T) {
	manifest := repoWithManifest(t, `apiVersion: shoal.dev/v1alpha1
kind: ModelDeployment
metadata:
  name: iris
spec:
  model:
    uri: models
  scaling:
    minReplicas: 0
    scaleToZeroGracePeriod: 2s
    stableWindow: 6s
`)
	u := startUp(t, t.TempDir(), nil, manifest)
	waitFor(t, 20*time.Second, "one ready replica", func() bool { return u.settled("iris", 1) })
	waitFor(t, 25*time.Second, "scale to zero", func() bool { return len(u.replicas("iris")) == 0 })
	if d := u.deployment("iris"); readyReason(d) != "ScaledToZero" {
		t.Errorf("Ready reason %q, want ScaledToZero", readyReason(d))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	start := time.Now()
	for range 5 {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- u.predict("iris") }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("held request: %v", err)
		}
	}
	t.Logf("5 requests from zero answered within %v", time.Since(start).Round(time.Millisecond))
	if n := len(u.replicas("iris")); n < 1 {
		t.Errorf("%d replicas after the requests, want at least 1", n)
	}
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

const irisCanary = `apiVersion: shoal.dev/v1alpha1
kind: ModelDeployment
metadata:
  name: iris
spec:
  model:
    uri: models
  scaling:
    minReplicas: 2
    maxReplicas: 2
  rollout:
    strategy: canary
    steps:
    - weight: 25
      pause: 1s
    - weight: 50
      pause: 1s
    analysis:
      minRequests: 20
`

// withArgs returns the canary manifest with the model at an absolute path
// and these runtime args: a new revision.
func withArgs(manifest string, args string) string {
	return strings.Replace(irisCanary, "    uri: models\n", "    uri: "+filepath.Join(filepath.Dir(manifest), "models")+"\n  runtime:\n    args: "+args+"\n", 1)
}

func (u *up) reasons(name string) string {
	var evs []struct{ Reason, Message string }
	if err := u.getJSON("/v1/deployments/"+name+"/events", &evs); err != nil {
		u.t.Fatal(err)
	}
	var rs []string
	for _, e := range evs {
		rs = append(rs, e.Reason)
	}
	return strings.Join(rs, ",")
}

// TestUpCanary: a canary whose replicas time out every request is rolled
// back automatically (the spec returns to the stable revision, the reason
// is recorded, and then no request fails); a healthy canary is promoted
// step by step and replaces the stable replicas.
func TestUpCanary(t *testing.T) {
	manifest := repoWithManifest(t, irisCanary)
	u := startUp(t, t.TempDir(), nil, manifest)
	waitFor(t, 20*time.Second, "two ready replicas", func() bool { return u.settled("iris", 2) })
	stable := u.deployment("iris")
	stableRev := control.RevisionName(&stable)

	stop := u.load("iris", 4)
	u.apply(withArgs(manifest, `["-default-timeout", "1ns"]`))
	waitFor(t, 30*time.Second, "rollback", func() bool { return strings.Contains(u.reasons("iris"), "RolledBack") })
	waitFor(t, 20*time.Second, "stable revision alone again", func() bool {
		d := u.deployment("iris")
		return control.RevisionName(&d) == stableRev && u.settled("iris", 2)
	})
	ok, failed, _ := stop()
	t.Logf("broken canary: %d ok, %d failed during its analysis", ok, failed)
	if failed == 0 {
		t.Errorf("the broken canary failed no request: was it routed to?")
	}
	stop = u.load("iris", 2)
	time.Sleep(500 * time.Millisecond) // some traffic on the rolled-back deployment
	if ok, failed, errs := stop(); failed != 0 || ok == 0 {
		t.Errorf("after rollback: %d ok, %d failed %q; want none failed", ok, failed, errs)
	}

	stop = u.load("iris", 4)
	u.apply(withArgs(manifest, `["-default-timeout", "20s"]`))
	waitFor(t, 30*time.Second, "promotion", func() bool {
		d := u.deployment("iris")
		return strings.Contains(u.reasons("iris"), "Promoted") && control.RevisionName(&d) != stableRev && u.settled("iris", 2)
	})
	if ok, failed, errs := stop(); failed != 0 || ok == 0 {
		t.Errorf("healthy canary: %d ok, %d failed %q; want none failed", ok, failed, errs)
	}
	if r := u.reasons("iris"); !strings.Contains(r, "CanaryStarted,CanaryStep") {
		t.Errorf("events %s, want CanaryStarted then CanaryStep", r)
	}
}

// TestUpCanaryRestart: a control plane killed with SIGKILL in the middle
// of a canary step and started again on the same state directory resumes
// that step (the canary's replica adopted, its analysis kept) instead of
// finishing the rollout as a rolling update; a promote then ends it.
func TestUpCanaryRestart(t *testing.T) {
	hold := strings.Replace(strings.Replace(irisCanary, "    - weight: 25\n      pause: 1s\n    - weight: 50\n      pause: 1s\n", "    - weight: 50\n      pause: 1h\n", 1), "      minRequests: 20\n", "      minRequests: 10\n", 1)
	manifest := repoWithManifest(t, hold)
	state := t.TempDir()
	u := startUp(t, state, nil, manifest)
	waitFor(t, 20*time.Second, "two ready replicas", func() bool { return u.settled("iris", 2) })
	stable := u.deployment("iris")
	stableRev := control.RevisionName(&stable)

	canaryDoc := strings.Replace(hold, "    uri: models\n", "    uri: "+filepath.Join(filepath.Dir(manifest), "models")+"\n  runtime:\n    args: [\"-default-timeout\", \"20s\"]\n", 1)
	u.apply(canaryDoc)
	stop := u.load("iris", 2)
	canaryCond := func(u *up) string {
		d := u.deployment("iris")
		for _, c := range d.Status.Conditions {
			if c.Type == "Canary" {
				return c.Status + " " + c.Message
			}
		}
		return ""
	}
	waitFor(t, 30*time.Second, "the canary judged healthy", func() bool { return strings.Contains(canaryCond(u), "healthy") })
	if ok, failed, errs := stop(); failed != 0 || ok == 0 {
		t.Errorf("canary: %d ok, %d failed %q; want none failed", ok, failed, errs)
	}
	d := u.deployment("iris")
	canaryRev := control.RevisionName(&d)
	u.kill()

	// Started again with the canary's spec, as it was applied last.
	again := filepath.Join(filepath.Dir(manifest), "canary.yaml")
	if err := os.WriteFile(again, []byte(canaryDoc), 0o644); err != nil {
		t.Fatal(err)
	}
	u2 := startUp(t, state, u, again)
	waitFor(t, 20*time.Second, "CanaryResumed", func() bool { return strings.Contains(u2.reasons("iris"), "CanaryResumed") })
	revs := map[string]int{}
	for _, r := range u2.replicas("iris") {
		revs[r.Revision]++
		if !r.Adopted {
			t.Errorf("replica %s not adopted after the restart", r.ID)
		}
	}
	if revs[stableRev] != 2 || revs[canaryRev] != 1 {
		t.Errorf("replicas by revision after the restart = %v, want 2 of %s and 1 of %s (the step goes on)", revs, stableRev, canaryRev)
	}
	if c := canaryCond(u2); !strings.HasPrefix(c, "True") {
		t.Errorf("Canary condition after the restart = %q, want True (in progress)", c)
	}
	if r := u2.reasons("iris"); strings.Count(r, "CanaryStarted") != 1 || strings.Contains(r, "RolloutStarted") {
		t.Errorf("events %s, want one CanaryStarted and no rolling update", r)
	}
	var out, errb bytes.Buffer
	if code := Run(t.Context(), []string{"rollout", "promote", "iris", "-control", u2.ctlAddr}, &out, &errb); code != 0 {
		t.Fatalf("shoal rollout promote = %d %s%s", code, out.String(), errb.String())
	}
	// settled: only the canary's revision (the spec's) runs, 2 ready.
	waitFor(t, 30*time.Second, "promotion", func() bool {
		return strings.Contains(u2.reasons("iris"), "Promoted") && u2.settled("iris", 2)
	})
}
