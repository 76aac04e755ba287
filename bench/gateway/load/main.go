// Command load is the load generator of bench/gateway/run.sh. With -rate
// it is open loop: request i is due at start + i/rate whatever happened
// to the earlier ones, and its latency counts from when it was due, so a
// stalled server is charged for the requests it delayed (no coordinated
// omission). Without -rate it is closed loop: -c workers send back to
// back, which measures capacity.
//
// It prints one JSON object: requests, errors by kind, achieved rate,
// latency percentiles of the successful requests, the latency of
// rejections (429/503), and the CPU time per request of the processes
// given with -pid (utime+stime from /proc/PID/stat over the measured
// window) and of itself.
//
// It only targets loopback addresses. Its HTTP client is by default the
// gateway's lean one (-client lean); -client std is net/http's, which
// cost the generator 1.6x the CPU per request in one test (135 against
// 82 µs at 4,000 req/s).
//
//	load -url http://127.0.0.1:18091/v2/models/iris/infer -body @req.json -rate 2000 -d 5s -pid 1234,5678
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shoal-ml/shoal/internal/gateway/upstream"
)

type result struct {
	Label       string         `json:"label,omitempty"`
	Mode        string         `json:"mode"`
	TargetRate  float64        `json:"target_rate,omitempty"`
	Seconds     float64        `json:"seconds"`
	Requests    int            `json:"requests"`
	OK          int            `json:"ok"`
	Errors      map[string]int `json:"errors,omitempty"`
	RPS         float64        `json:"rps"`
	OKRPS       float64        `json:"ok_rps"`
	P50us       float64        `json:"p50_us"`
	P90us       float64        `json:"p90_us"`
	P99us       float64        `json:"p99_us"`
	MaxUs       float64        `json:"max_us"`
	RejectP99us float64        `json:"reject_p99_us,omitempty"`
	// The same from when each request was actually sent, which leaves
	// out the generator's own lag behind the schedule.
	SentP50us       float64            `json:"sent_p50_us"`
	SentP99us       float64            `json:"sent_p99_us"`
	SentRejectP99us float64            `json:"sent_reject_p99_us,omitempty"`
	CPUus           map[string]float64 `json:"cpu_us_per_req,omitempty"`
	SelfCPUus       float64            `json:"self_cpu_us_per_req"`
}

type sample struct {
	lat  time.Duration // from the due time
	sent time.Duration // from the actual send
	code int           // 0: transport error
}

func main() {
	var (
		target  = flag.String("url", "", "`URL` to POST to (loopback only)")
		body    = flag.String("body", "", "request body; @FILE reads it from FILE")
		rate    = flag.Float64("rate", 0, "open loop at this many requests/s (0: closed loop)")
		conc    = flag.Int("c", 64, "closed loop: concurrent workers; open loop: most requests in flight (beyond: counted as 'late')")
		dur     = flag.Duration("d", 5*time.Second, "measured duration")
		warmup  = flag.Duration("warmup", time.Second, "unmeasured duration before -d")
		timeout = flag.Duration("timeout", 5*time.Second, "per-request timeout")
		pids    = flag.String("pid", "", "comma-separated `pids` whose CPU time per request to report")
		label   = flag.String("label", "", "label copied into the output")
		kind    = flag.String("client", "lean", "HTTP client: lean (internal/gateway/upstream, cheaper per request) or std (net/http)")
	)
	flag.Parse()
	if err := run(*target, *body, *rate, *conc, *dur, *warmup, *timeout, *pids, *label, *kind); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func run(target, body string, rate float64, conc int, dur, warmup, timeout time.Duration, pidList, label, clientKind string) error {
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-url %q: only loopback IP targets", target)
	}
	payload := []byte(body)
	if f, ok := strings.CutPrefix(body, "@"); ok {
		if payload, err = os.ReadFile(f); err != nil {
			return err
		}
	}
	var pids []int
	for _, p := range strings.Split(pidList, ",") {
		if p = strings.TrimSpace(p); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil {
				return fmt.Errorf("-pid %q: %v", p, err)
			}
			pids = append(pids, n)
		}
	}
	if u.Scheme != "http" {
		return fmt.Errorf("-url %q: only http URLs", target)
	}
	var do func() int
	switch clientKind {
	case "lean":
		// The gateway's own HTTP/1.1 client: no goroutines per
		// connection, one write per request, so the generator takes less
		// of the cores it shares with the servers it measures.
		tr := upstream.New()
		hdr := http.Header{"Content-Type": {"application/json"}}
		uri := u.RequestURI()
		do = func() int {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			resp, err := tr.Send(ctx, u.Host, http.MethodPost, uri, hdr, payload)
			if err != nil {
				return 0
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil {
				return 0
			}
			return resp.StatusCode
		}
	case "std":
		client := &http.Client{
			Timeout: timeout,
			Transport: &http.Transport{
				Proxy:               nil,
				DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
				MaxIdleConns:        conc,
				MaxIdleConnsPerHost: conc,
				IdleConnTimeout:     time.Minute,
				DisableCompression:  true,
			},
		}
		do = func() int {
			resp, err := client.Post(target, "application/json", bytes.NewReader(payload))
			if err != nil {
				return 0
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode
		}
	default:
		return fmt.Errorf("-client %q: want lean or std", clientKind)
	}

	start := time.Now()
	mark := start.Add(warmup)
	stop := mark.Add(dur)
	var (
		mu      sync.Mutex
		samples = make([]sample, 0, 1<<16)
		late    atomic.Int64
		wg      sync.WaitGroup
	)
	record := func(due, sent, end time.Time, code int) {
		if due.Before(mark) || !due.Before(stop) {
			return
		}
		mu.Lock()
		samples = append(samples, sample{end.Sub(due), end.Sub(sent), code})
		mu.Unlock()
	}
	mode := "closed"
	if rate > 0 {
		mode = "open"
		// A fixed pool of conc workers takes due times from a queue; a
		// request whose worker is not free within a second of its due
		// time is counted late (the generator could not keep up).
		due := make(chan time.Time, conc*4)
		for range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for d := range due {
					if time.Since(d) > time.Second {
						if !d.Before(mark) && d.Before(stop) {
							late.Add(1)
						}
						continue
					}
					sent := time.Now()
					code := do()
					record(d, sent, time.Now(), code)
				}
			}()
		}
		interval := time.Duration(float64(time.Second) / rate)
		wg.Add(1)
		go func() { // the pacer
			defer wg.Done()
			defer close(due)
			next := start
			for next.Before(stop) {
				now := time.Now()
				for !next.After(now) && next.Before(stop) {
					due <- next
					next = next.Add(interval)
				}
				time.Sleep(min(time.Until(next), time.Millisecond))
			}
		}()
	} else {
		for range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					t0 := time.Now()
					if !t0.Before(stop) {
						return
					}
					code := do()
					record(t0, t0, time.Now(), code)
				}
			}()
		}
	}
	// CPU clocks at the edges of the measured window.
	time.Sleep(time.Until(mark))
	cpu0 := cpuOf(pids)
	self0 := selfCPU()
	time.Sleep(time.Until(stop))
	cpu1 := cpuOf(pids)
	self1 := selfCPU()
	wg.Wait()

	res := result{Label: label, Mode: mode, TargetRate: rate, Seconds: dur.Seconds(), Errors: map[string]int{}}
	var ok, rejected, okSent, rejectedSent []time.Duration
	for _, s := range samples {
		switch {
		case s.code == 200:
			ok = append(ok, s.lat)
			okSent = append(okSent, s.sent)
		case s.code == 429 || s.code == 503:
			rejected = append(rejected, s.lat)
			rejectedSent = append(rejectedSent, s.sent)
			res.Errors[strconv.Itoa(s.code)]++
		case s.code == 0:
			res.Errors["transport"]++
		default:
			res.Errors[strconv.Itoa(s.code)]++
		}
	}
	if n := late.Load(); n > 0 {
		res.Errors["late"] = int(n)
	}
	for _, l := range [][]time.Duration{ok, rejected, okSent, rejectedSent} {
		slices.Sort(l)
	}
	res.SentP50us, res.SentP99us = us(pct(okSent, .5)), us(pct(okSent, .99))
	res.SentRejectP99us = us(pct(rejectedSent, .99))
	res.Requests = len(samples)
	res.OK = len(ok)
	res.RPS = float64(len(samples)) / dur.Seconds()
	res.OKRPS = float64(len(ok)) / dur.Seconds()
	res.P50us, res.P90us, res.P99us = us(pct(ok, .5)), us(pct(ok, .9)), us(pct(ok, .99))
	if len(ok) > 0 {
		res.MaxUs = us(ok[len(ok)-1])
	}
	res.RejectP99us = us(pct(rejected, .99))
	if n := float64(len(samples)); n > 0 {
		res.SelfCPUus = us(self1-self0) / n
		if len(pids) > 0 {
			res.CPUus = map[string]float64{}
			for i, p := range pids {
				res.CPUus[strconv.Itoa(p)] = us(cpu1[i]-cpu0[i]) / n
			}
		}
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

func pct(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// cpuOf returns the user+system CPU time of each pid (0 if unreadable).
func cpuOf(pids []int) []time.Duration {
	out := make([]time.Duration, len(pids))
	for i, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		j := bytes.LastIndexByte(b, ')')
		if j < 0 {
			continue
		}
		fs := strings.Fields(string(b[j+1:]))
		if len(fs) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(fs[11], 10, 64)
		st, _ := strconv.ParseInt(fs[12], 10, 64)
		out[i] = time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ = 100
	}
	return out
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
