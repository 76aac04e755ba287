package control

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/shoal-ml/shoal/api/v1alpha1"
	"github.com/shoal-ml/shoal/internal/replica"
)

// recorder is a Backend that keeps the replicas it is asked to start. The
// real backends have their own tests; this one checks the routing.
type recorder struct {
	name string
	mu   sync.Mutex
	reps []Replica
}

func (r *recorder) Start(s replica.Spec) (Replica, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := Replica{ID: fmt.Sprintf("%s-%d", s.Revision, len(r.reps)), Deployment: s.Deployment, Revision: s.Revision}
	r.reps = append(r.reps, rep)
	return rep, nil
}

func (r *recorder) Stop(id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.reps)
	r.reps = removeID(r.reps, id)
	if len(r.reps) == n {
		return errors.New(r.name + ": no such replica")
	}
	return nil
}

func (r *recorder) List() []Replica {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Replica(nil), r.reps...)
}

type fileLogs struct {
	*recorder
	dir string
}

func (f fileLogs) LogPath(id string) string { return filepath.Join(f.dir, id+".log") }

type engineLogs struct{ *recorder }

func (e engineLogs) Logs(_ context.Context, id string, tail int) ([]byte, error) {
	return []byte(fmt.Sprintf("engine log of %s, tail %d\n", id, tail)), nil
}

func TestBackendsRouteBySpecBackend(t *testing.T) {
	dir := t.TempDir()
	proc := fileLogs{&recorder{name: "process"}, dir}
	dock := engineLogs{&recorder{name: "docker"}}
	bs := &Backends{ByName: map[string]Backend{"process": proc, "docker": dock}}

	for _, c := range []struct {
		spec replica.Spec
		want *recorder
	}{
		{replica.Spec{Deployment: "a", Revision: "a-1"}, proc.recorder},
		{replica.Spec{Deployment: "b", Revision: "b-1", Backend: "process"}, proc.recorder},
		{replica.Spec{Deployment: "c", Revision: "c-1", Backend: "docker"}, dock.recorder},
	} {
		r, err := bs.Start(c.spec)
		if err != nil {
			t.Fatalf("Start(%+v): %v", c.spec, err)
		}
		if got := c.want.List(); got[len(got)-1].ID != r.ID {
			t.Errorf("Start(%+v) = %s, not on %s", c.spec, r.ID, c.want.name)
		}
	}
	if _, err := bs.Start(replica.Spec{Deployment: "d", Revision: "d-1", Backend: "kubernetes"}); !errors.Is(err, ErrBackendNotEnabled) {
		t.Errorf("Start(kubernetes) = %v, want ErrBackendNotEnabled", err)
	}
	var ids []string
	for _, r := range bs.List() {
		ids = append(ids, r.ID)
	}
	if want := []string{"a-1-0", "b-1-1", "c-1-0"}; !slices.Equal(ids, want) {
		t.Errorf("List() IDs = %q, want %q", ids, want)
	}

	if err := os.WriteFile(proc.LogPath("a-1-0"), []byte("served\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ id, want string }{
		{"a-1-0", "served\n"},
		{"b-1-1", ""}, // no log file yet
		{"c-1-0", "engine log of c-1-0, tail 5\n"},
	} {
		got, err := bs.Logs(t.Context(), c.id, 5)
		if err != nil || string(got) != c.want {
			t.Errorf("Logs(%s) = %q, %v; want %q", c.id, got, err, c.want)
		}
	}
	if _, err := bs.Logs(t.Context(), "nope", 5); !errors.Is(err, ErrNoReplica) {
		t.Errorf("Logs(nope) = %v, want ErrNoReplica", err)
	}

	if err := bs.Stop("c-1-0"); err != nil {
		t.Fatal(err)
	}
	if n := len(dock.List()); n != 0 {
		t.Errorf("docker has %d replicas after Stop, want 0", n)
	}
	if err := bs.Stop("c-1-0"); !errors.Is(err, ErrNoReplica) {
		t.Errorf("second Stop = %v, want ErrNoReplica", err)
	}
}

func TestResourceLimits(t *testing.T) {
	for _, c := range []struct {
		in       v1alpha1.Resources
		cpu, mem int64
	}{
		{v1alpha1.Resources{}, 0, 0},
		{v1alpha1.Resources{CPU: "500m", Memory: "256Mi"}, 500, 256 << 20},
		{v1alpha1.Resources{CPU: "2", Memory: "1G"}, 2000, 1e9},
	} {
		cpu, mem := resourceLimits(c.in)
		if cpu != c.cpu || mem != c.mem {
			t.Errorf("resourceLimits(%+v) = %d, %d; want %d, %d", c.in, cpu, mem, c.cpu, c.mem)
		}
	}
}
