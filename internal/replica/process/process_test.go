package process

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-ml/shoal/internal/replica/replicatest"
)

// shoalBin is the shoal binary built once for the package's tests.
var shoalBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shoal-process-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shoalBin = filepath.Join(dir, "shoal")
	out, err := exec.Command("go", "build", "-o", shoalBin, "github.com/shoal-ml/shoal/cmd/shoal").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build shoal: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// The helpers shared with the docker backend's and shoal up's tests.
var (
	modelDir = replicatest.ModelDir
	waitFor  = replicatest.WaitFor
)

// predict asks the iris model of the replica at addr (host:port).
func predict(addr string) error { return replicatest.Predict("http://"+addr, "iris") }

func newBackend(t *testing.T, state string) *Backend {
	t.Helper()
	b, err := New(context.Background(), Config{StateDir: state, Executable: shoalBin, Grace: 2 * time.Second, HealthInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func one(t *testing.T, b *Backend) Replica {
	t.Helper()
	l := b.List()
	if len(l) != 1 {
		t.Fatalf("List() = %d replicas, want 1: %+v", len(l), l)
	}
	return l[0]
}

// TestStartKillStop starts a replica, kills it with SIGKILL (the
// supervisor restarts it on the same ports), and stops it.
func TestStartKillStop(t *testing.T) {
	state := t.TempDir()
	b := newBackend(t, state)
	defer b.Close()
	r, err := b.Start(Spec{Deployment: "iris", Revision: "iris-abc", Model: modelDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "ready", func() bool { return one(t, b).Ready })
	if err := predict(r.HTTP); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(b.recordPath(r.ID)); err != nil {
		t.Fatalf("no record: %v", err)
	}
	pid := one(t, b).PID
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "restart", func() bool { r := one(t, b); return r.Ready && r.PID != pid && r.Restarts == 1 })
	if err := predict(r.HTTP); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	newPID := one(t, b).PID
	if err := b.Stop(r.ID); err != nil {
		t.Fatal(err)
	}
	if l := b.List(); len(l) != 0 {
		t.Fatalf("List() after Stop = %+v, want none", l)
	}
	if alive(newPID) {
		t.Errorf("pid %d still alive after Stop", newPID)
	}
	if _, err := os.Stat(b.recordPath(r.ID)); !os.IsNotExist(err) {
		t.Errorf("record left after Stop: %v", err)
	}
	if err := b.Stop(r.ID); err == nil {
		t.Error("second Stop: want ErrNotFound")
	}
}

// TestAdopt plays a control plane that died: a `shoal serve` started by
// someone else with its record in the state directory is adopted, a record
// of a dead pid is dropped, and an adopted replica that exits leaves List.
func TestAdopt(t *testing.T) {
	state := t.TempDir()
	for _, d := range []string{"replicas", "logs"} {
		os.MkdirAll(filepath.Join(state, d), 0o755)
	}
	httpAddr, _ := freeAddr()
	grpcAddr, _ := freeAddr()
	cmd := exec.Command(shoalBin, "serve", "-http", httpAddr, "-grpc", grpcAddr, modelDir(t))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer cmd.Process.Kill()
	hc := &http.Client{Timeout: time.Second}
	waitFor(t, 20*time.Second, "serve ready", func() bool {
		resp, err := hc.Get("http://" + httpAddr + "/v2/health/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	write := func(r Replica) {
		raw, _ := json.Marshal(r)
		if err := os.WriteFile(filepath.Join(state, "replicas", r.ID+".json"), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(Replica{ID: "iris-abc-000007", Deployment: "iris", Revision: "iris-abc", PID: cmd.Process.Pid, HTTP: httpAddr, GRPC: grpcAddr})
	dead := exec.Command("true")
	dead.Run()
	write(Replica{ID: "iris-abc-000003", Deployment: "iris", Revision: "iris-abc", PID: dead.Process.Pid, HTTP: "127.0.0.1:1"})

	b := newBackend(t, state)
	defer b.Close()
	r := one(t, b)
	if r.ID != "iris-abc-000007" || !r.Adopted || !r.Ready || r.PID != cmd.Process.Pid {
		t.Fatalf("adopted %+v", r)
	}
	if _, err := os.Stat(filepath.Join(state, "replicas", "iris-abc-000003.json")); !os.IsNotExist(err) {
		t.Errorf("record of a dead pid kept: %v", err)
	}
	// New replicas number after the adopted ones.
	n, err := b.Start(Spec{Deployment: "iris", Revision: "iris-abc", Model: modelDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	if n.ID != "iris-abc-000008" {
		t.Errorf("new replica ID %s, want iris-abc-000008", n.ID)
	}
	if err := b.Stop(n.ID); err != nil {
		t.Fatal(err)
	}
	// The adopted process exits: it leaves the list.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-exited
	waitFor(t, 10*time.Second, "adopted replica gone", func() bool { return len(b.List()) == 0 })
}
