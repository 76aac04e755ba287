package process

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLimits: spec.resources reach a real replica as GOMAXPROCS and
// GOMEMLIMIT, and a replica whose resident set is over its memory limit is
// killed, restarted and reported.
func TestLimits(t *testing.T) {
	var mu sync.Mutex
	var events []string
	b, err := New(context.Background(), Config{StateDir: t.TempDir(), Executable: shoalBin, Grace: 2 * time.Second, HealthInterval: 100 * time.Millisecond,
		OnEvent: func(dep, reason, msg string) {
			mu.Lock()
			events = append(events, dep+" "+reason+": "+msg)
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	dir := modelDir(t)

	r, err := b.Start(Spec{Deployment: "iris", Revision: "iris-abc", Model: dir, MilliCPU: 1500, Memory: 512 << 20})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "ready", func() bool { return one(t, b).Ready })
	env, err := os.ReadFile("/proc/" + strconv.Itoa(one(t, b).PID) + "/environ")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	vars := strings.Split(string(env), "\x00")
	// 1.5 cores round up to 2; 90% of 512 MiB.
	for _, want := range []string{"GOMAXPROCS=2", "GOMEMLIMIT=483183820"} {
		found := false
		for _, v := range vars {
			found = found || v == want
		}
		if !found {
			t.Errorf("replica environment lacks %s", want)
		}
	}
	if raw, err := os.ReadFile(b.recordPath(r.ID)); err != nil || !strings.Contains(string(raw), `"memoryLimit":536870912`) {
		t.Errorf("record = %s, %v; want the memory limit kept for adoption", raw, err)
	}
	if err := b.Stop(r.ID); err != nil {
		t.Fatal(err)
	}

	// shoal serve holds more than 4 MiB resident from its start.
	r, err = b.Start(Spec{Deployment: "iris", Revision: "iris-small", Model: dir, Memory: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "a kill and a restart", func() bool {
		mu.Lock()
		n := len(events)
		mu.Unlock()
		return n > 0 && one(t, b).Restarts > 0
	})
	mu.Lock()
	got := events[0]
	mu.Unlock()
	if !strings.HasPrefix(got, "iris "+ReasonMemoryLimitExceeded+": replica "+r.ID) || !strings.Contains(got, "over its memory limit of 4 MiB") {
		t.Errorf("event = %q, want iris %s naming %s and its limit", got, ReasonMemoryLimitExceeded, r.ID)
	}
}
