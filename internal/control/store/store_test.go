package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/shoal-ml/shoal/api/v1alpha1"
)

func deployment(name, uri string) v1alpha1.ModelDeployment {
	d := v1alpha1.ModelDeployment{Metadata: v1alpha1.ObjectMeta{Name: name}, Spec: v1alpha1.ModelDeploymentSpec{Model: v1alpha1.ModelSource{URI: uri}}}
	d.Default()
	return d
}

func open(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "shoal.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestCRUDAndConcurrency(t *testing.T) {
	s, _ := open(t)
	d, err := s.Create(deployment("iris", "a.json"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Metadata.ResourceVersion == "" || d.Metadata.Generation != 1 || d.Metadata.UID == "" || d.Metadata.CreationTimestamp == nil {
		t.Errorf("Create set metadata %+v", d.Metadata)
	}
	if _, err := s.Create(deployment("iris", "b.json")); !errors.Is(err, ErrExists) {
		t.Errorf("second Create = %v, want ErrExists", err)
	}
	got, err := s.Get("iris")
	if err != nil || got.Spec.Model.URI != "a.json" {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	if _, err := s.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(nope) = %v", err)
	}

	// A spec change bumps generation and resourceVersion.
	got.Spec.Model.URI = "b.json"
	upd, err := s.Update(got)
	if err != nil {
		t.Fatal(err)
	}
	if upd.Metadata.Generation != 2 || upd.Metadata.ResourceVersion == got.Metadata.ResourceVersion {
		t.Errorf("Update metadata = %+v", upd.Metadata)
	}
	// A write based on the old version conflicts.
	got.Spec.Model.URI = "c.json"
	if _, err := s.Update(got); !errors.Is(err, ErrConflict) {
		t.Errorf("stale Update = %v, want ErrConflict", err)
	}
	// A status write keeps spec and generation.
	upd.Status.URL = "http://x"
	upd.Spec.Model.URI = "ignored.json"
	st, err := s.UpdateStatus(upd)
	if err != nil {
		t.Fatal(err)
	}
	if st.Spec.Model.URI != "b.json" || st.Metadata.Generation != 2 || st.Status.URL != "http://x" {
		t.Errorf("UpdateStatus = %+v", st)
	}
	// Update keeps the stored status.
	st.Spec.Scaling.MaxReplicas = 7
	st.Status.URL = ""
	u2, err := s.Update(st)
	if err != nil || u2.Status.URL != "http://x" || u2.Metadata.Generation != 3 {
		t.Errorf("Update after status = %+v, %v", u2, err)
	}
	// A no-op write changes nothing.
	u3, err := s.Update(u2)
	if err != nil || u3.Metadata.ResourceVersion != u2.Metadata.ResourceVersion {
		t.Errorf("no-op Update changed the version: %v -> %v (%v)", u2.Metadata.ResourceVersion, u3.Metadata.ResourceVersion, err)
	}
	s.Create(deployment("alpha", "x.json"))
	list, err := s.List()
	if err != nil || len(list) != 2 || list[0].Metadata.Name != "alpha" {
		t.Errorf("List = %v, %v", list, err)
	}
	if err := s.Delete("iris"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("iris"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete = %v", err)
	}
}

func TestWatch(t *testing.T) {
	s, _ := open(t)
	s.Create(deployment("before", "a.json"))
	ctx, cancel := context.WithCancel(context.Background())
	list, ch, err := s.Watch(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("Watch = %v, %v", list, err)
	}
	d, _ := s.Create(deployment("after", "b.json"))
	d.Spec.Model.URI = "c.json"
	s.Update(d)
	s.Delete("after")
	want := []EventType{Added, Modified, Deleted}
	for i, w := range want {
		select {
		case e := <-ch:
			if e.Type != w || e.Object.Metadata.Name != "after" {
				t.Errorf("event %d = %s %s, want %s after", i, e.Type, e.Object.Metadata.Name, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no event %d", i)
		}
	}
	cancel()
	for range ch { // closes after cancel
	}
}

func TestEvents(t *testing.T) {
	s, _ := open(t)
	for i := range MaxEventsPerObject + 5 {
		if err := s.Record("iris", ObjectEvent{Type: "Normal", Reason: "ScaledUp", Message: strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := s.Events("iris")
	if err != nil || len(evs) != MaxEventsPerObject || evs[0].Message != "5" || evs[len(evs)-1].Message != strconv.Itoa(MaxEventsPerObject+4) {
		t.Errorf("Events = %d events, first %v, err %v", len(evs), evs[0], err)
	}
}

// TestKill9LosesNothing writes objects from a child process, kills it with
// SIGKILL mid-stream, and checks that every write it acknowledged is there.
func TestKill9LosesNothing(t *testing.T) {
	if path := os.Getenv("SHOAL_STORE_WRITER"); path != "" {
		s, err := Open(path)
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		for i := 0; ; i++ {
			if _, err := s.Create(deployment("m"+strconv.Itoa(i), "x.json")); err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			fmt.Println("ack", i)
		}
	}
	path := filepath.Join(t.TempDir(), "shoal.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9LosesNothing$")
	cmd.Env = append(os.Environ(), "SHOAL_STORE_WRITER="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := -1
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var n int
		if _, err := fmt.Sscanf(sc.Text(), "ack %d", &n); err != nil {
			t.Fatalf("writer said %q", sc.Text())
		}
		acked = n
		if acked == 20 {
			cmd.Process.Kill()
			break
		}
	}
	cmd.Wait()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 0; i <= acked; i++ {
		if _, err := s.Get("m" + strconv.Itoa(i)); err != nil {
			t.Errorf("acknowledged object m%d lost after kill -9: %v", i, err)
		}
	}
}

// TestState: controller state survives a reopen, wakes no watcher and goes
// with its object.
func TestState(t *testing.T) {
	s, path := open(t)
	if _, err := s.Create(deployment("iris", "a.json")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, events, err := s.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type memo struct{ Step int }
	var got memo
	if ok, err := s.State("iris", &got); ok || err != nil {
		t.Fatalf("State before Put = %v, %v; want false, nil", ok, err)
	}
	if err := s.PutState("iris", memo{Step: 2}); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-events:
		t.Errorf("PutState woke a watcher: %v", e.Type)
	default:
	}
	cancel()
	s.Close()
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if ok, err := s2.State("iris", &got); !ok || err != nil || got.Step != 2 {
		t.Fatalf("State after reopen = %+v, %v, %v; want Step 2", got, ok, err)
	}
	if err := s2.Delete("iris"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s2.State("iris", &got); ok {
		t.Error("State after Delete is still there")
	}
}
