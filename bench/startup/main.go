// Command startup measures how long a server takes from exec to ready, for
// bench/run.sh: -n times it starts the command given after its flags,
// polls -url every -poll until it answers 200, records the time since just
// before exec and the process's VmRSS at that moment, and stops the
// process with SIGTERM (SIGKILL after 5 s). It prints one JSON object with
// every run and the medians.
//
// Each poll is a new connection, so a poll never waits on a connection
// left over from the previous run. Polling every 1 ms costs the server a
// little CPU while it starts; the number is an upper bound.
//
//	startup -n 10 -url http://127.0.0.1:18081/v2/health/ready -- shoal serve -http 127.0.0.1:18081 -grpc '' examples/models
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"syscall"
	"time"
)

type result struct {
	Label    string    `json:"label,omitempty"`
	ReadyMs  []float64 `json:"ready_ms"`
	RSSKiB   []int64   `json:"rss_kib"`
	MedianMs float64   `json:"median_ready_ms"`
	MinMs    float64   `json:"min_ready_ms"`
	MaxMs    float64   `json:"max_ready_ms"`
	// MedianRSSKiB is the median VmRSS at the moment of the first 200.
	MedianRSSKiB int64 `json:"median_rss_kib"`
}

func main() {
	var (
		target  = flag.String("url", "", "readiness `URL`: ready is the first 200")
		n       = flag.Int("n", 10, "number of runs")
		poll    = flag.Duration("poll", time.Millisecond, "poll interval")
		timeout = flag.Duration("timeout", 10*time.Second, "give up on a run after this long")
		logFile = flag.String("log", "", "append the command's stdout and stderr to this `file` (default: discard)")
		label   = flag.String("label", "", "label copied into the output")
	)
	flag.Parse()
	// SIGINT or SIGTERM stops the command being measured, then startup.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *label, *target, *n, *poll, *timeout, *logFile, flag.Args())
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "startup:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, label, target string, n int, poll, timeout time.Duration, logFile string, argv []string) error {
	if target == "" || len(argv) == 0 || n < 1 {
		return errors.New("usage: startup -url URL [-n N] -- COMMAND [ARG...]")
	}
	var log *os.File
	if logFile != "" {
		f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		log = f
	}
	client := &http.Client{
		Timeout:   time.Second,
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
	}
	res := result{Label: label}
	for range n {
		ms, rss, err := once(ctx, client, target, poll, timeout, log, argv)
		if err != nil {
			return err
		}
		res.ReadyMs = append(res.ReadyMs, ms)
		res.RSSKiB = append(res.RSSKiB, rss)
	}
	ms := slices.Sorted(slices.Values(res.ReadyMs))
	rss := slices.Sorted(slices.Values(res.RSSKiB))
	res.MedianMs, res.MinMs, res.MaxMs = ms[(n-1)/2], ms[0], ms[n-1]
	if n%2 == 0 {
		res.MedianMs = (ms[n/2-1] + ms[n/2]) / 2
	}
	res.MedianRSSKiB = rss[(n-1)/2]
	return json.NewEncoder(os.Stdout).Encode(res)
}

// once starts argv, waits for target to answer 200, and stops it. It
// returns the milliseconds from just before exec to the first 200 and the
// process's VmRSS in KiB then. It stops early when ctx is done.
func once(ctx context.Context, client *http.Client, target string, poll, timeout time.Duration, log *os.File, argv []string) (float64, int64, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	if log != nil {
		cmd.Stdout, cmd.Stderr = log, log
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()
	for {
		if resp, err := client.Get(target); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				d := time.Since(t0)
				rss, err := vmRSS(cmd.Process.Pid)
				return float64(d) / float64(time.Millisecond), rss, err
			}
		}
		if time.Since(t0) > timeout {
			return 0, 0, fmt.Errorf("%v: not ready after %v", argv, timeout)
		}
		select {
		case err := <-exited:
			exited <- err // for the deferred stop
			return 0, 0, fmt.Errorf("%v exited before ready: %v", argv, err)
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(poll):
		}
	}
}

// vmRSS returns the VmRSS of pid in KiB.
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var kib int64
		if _, err := fmt.Sscanf(sc.Text(), "VmRSS: %d kB", &kib); err == nil {
			return kib, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
