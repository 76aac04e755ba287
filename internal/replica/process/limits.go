package process

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// What spec.resources does to a process replica:
//
//   - CPU (Spec.MilliCPU): GOMAXPROCS is set to the cores, rounded up, at
//     least 1, so the replica's Go runtime runs no more threads of Go code
//     at once. It is not a quota: the kernel does not stop the process
//     from using more (a cgroup would; a process backend run without
//     privileges has none).
//   - Memory (Spec.Memory): GOMEMLIMIT is set to 90% of it, so the garbage
//     collector works harder as the heap nears the limit; and the backend
//     checks the replica process's resident set every HealthInterval and
//     kills it (SIGKILL to its process group) when it is above the limit,
//     telling OnEvent (ReasonMemoryLimitExceeded). A supervised replica is
//     then restarted with backoff; an adopted one is replaced by the
//     control plane. Only the replica process itself is measured, not the
//     processes it starts (the python backend's workers have their own
//     memory limit). RLIMIT_AS is not used: a Go program reserves far more
//     address space than it touches, so an address-space limit kills
//     healthy replicas. The check needs /proc (Linux); elsewhere only
//     GOMEMLIMIT applies.

// memoryHeadroom is the share of Spec.Memory given to GOMEMLIMIT: the
// rest is for what the Go runtime does not count (stacks of cgo threads,
// the binary's text, fragmentation).
const memoryHeadroom = 0.9

// limitEnv returns the environment entries that carry s's limits.
func limitEnv(s Spec) []string {
	var env []string
	if s.MilliCPU > 0 {
		env = append(env, "GOMAXPROCS="+strconv.FormatInt(max(1, (s.MilliCPU+999)/1000), 10))
	}
	if s.Memory > 0 {
		env = append(env, "GOMEMLIMIT="+strconv.FormatInt(int64(float64(s.Memory)*memoryHeadroom), 10))
	}
	return env
}

// watchMemory starts checking e's resident set against its limit, until
// e.memStop is called. It does nothing for a replica without a limit.
func (b *Backend) watchMemory(e *entry) {
	if e.memLimit <= 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.memStop = cancel
	go func() {
		t := time.NewTicker(b.cfg.HealthInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			var pid int
			if e.sup != nil {
				pid = e.sup.Pid()
			} else {
				pid = e.rec.PID // an adopted replica's never changes
			}
			if pid <= 0 {
				continue
			}
			rss, err := residentBytes(pid)
			if err != nil || rss <= e.memLimit || ctx.Err() != nil {
				continue
			}
			msg := fmt.Sprintf("replica %s (pid %d) resident %d MiB, over its memory limit of %d MiB: killed to be restarted",
				e.rec.ID, pid, rss>>20, e.memLimit>>20)
			b.cfg.Logger.Warn("replica over its memory limit", "replica", e.rec.ID, "pid", pid, "rss", rss, "limit", e.memLimit)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			b.cfg.OnEvent(e.rec.Deployment, ReasonMemoryLimitExceeded, msg)
		}
	}()
}

// residentBytes returns the resident set size of process pid, from
// /proc/PID/statm (its second field, in pages).
func residentBytes(pid int) (int64, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(raw))
	if len(f) < 2 {
		return 0, fmt.Errorf("/proc/%d/statm: %q", pid, raw)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/statm: %w", pid, err)
	}
	return pages * int64(os.Getpagesize()), nil
}
