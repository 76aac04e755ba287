// Command drive is the load generator of bench/batch/run.sh. Unlike
// bench/loadgen, which repeats one body, it sends distinct rows: request i
// carries line i (mod N) of -bodies, a JSON-lines file of OIP request
// bodies. A repeated row would find its path through a tree model in the
// CPU caches every time and flatter the unbatched server.
//
// Closed loop (-c N): N workers each send a request, wait for the whole
// answer, and send the next, for -warmup and then -d. Open loop (-rate R):
// a request starts every 1/R seconds for -d whatever the answers, so the
// offered load does not drop when the server slows down (the overload
// case). It prints one JSON object: requests, accepted (200), rejected
// (429), other outcomes, and latency percentiles of the accepted and of
// the rejected requests, over the measured window.
//
// With -timeout-us it sets the OIP "timeout" parameter of every request.
// It only targets loopback addresses.
//
//	drive -url http://127.0.0.1:18090/v2/models/batched/infer -bodies bodies.jsonl -c 64 -d 5s
//	drive -url http://127.0.0.1:18090/v2/models/batched/infer -bodies bodies.jsonl -rate 4000 -d 5s -timeout-us 50000
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

type summary struct {
	Count int     `json:"count"`
	P50us float64 `json:"p50_us"`
	P99us float64 `json:"p99_us"`
	MaxUs float64 `json:"max_us"`
}

type result struct {
	Label       string  `json:"label,omitempty"`
	URL         string  `json:"url"`
	Concurrency int     `json:"concurrency,omitempty"`
	Rate        float64 `json:"offered_rps,omitempty"`
	Seconds     float64 `json:"seconds"`
	Accepted    summary `json:"accepted"`
	Rejected    summary `json:"rejected"`
	Other       int     `json:"other"` // transport errors, other statuses, starts skipped at -max-inflight
	RPS         float64 `json:"rps"`   // accepted per second
	FirstOther  string  `json:"first_other,omitempty"`
}

func main() {
	var (
		target   = flag.String("url", "", "`URL` to POST to (loopback only)")
		bodies   = flag.String("bodies", "", "JSON-lines `file` of request bodies, sent in turn")
		conc     = flag.Int("c", 0, "closed loop: concurrent workers")
		rate     = flag.Float64("rate", 0, "open loop: requests started per second")
		dur      = flag.Duration("d", 5*time.Second, "measured duration")
		warmup   = flag.Duration("warmup", time.Second, "unmeasured duration before -d (closed loop)")
		timeout  = flag.Int64("timeout-us", 0, "OIP timeout parameter of every request, µs (0: none)")
		inflight = flag.Int("max-inflight", 4096, "open loop: requests in flight beyond which a start is skipped (counted as other)")
		label    = flag.String("label", "", "label copied into the output")
	)
	flag.Parse()
	d := &driver{label: *label}
	err := d.setup(*target, *bodies, *timeout)
	if err == nil {
		switch {
		case *conc > 0 && *rate == 0:
			err = d.closed(*conc, *warmup, *dur)
		case *rate > 0 && *conc == 0:
			err = d.open(*rate, *dur, *inflight)
		default:
			err = fmt.Errorf("set one of -c and -rate")
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "drive:", err)
		os.Exit(1)
	}
}

type driver struct {
	label  string
	target string
	bodies [][]byte
	next   atomic.Uint64
	client *http.Client

	mu       sync.Mutex
	acc, rej []time.Duration
	other    int
	first    string
}

func (d *driver) setup(target, file string, timeoutUs int64) error {
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-url %q: only loopback targets", target)
	}
	d.target = target
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		b := slices.Clone(sc.Bytes())
		if timeoutUs > 0 {
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			m["parameters"] = map[string]any{"timeout": timeoutUs}
			if b, err = json.Marshal(m); err != nil {
				return err
			}
		}
		d.bodies = append(d.bodies, b)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(d.bodies) == 0 {
		return fmt.Errorf("%s: no bodies", file)
	}
	d.client = &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy: nil, MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096,
			IdleConnTimeout: time.Minute, DisableCompression: true,
		},
	}
	return nil
}

// do sends the next body; record says whether to count it.
func (d *driver) do(record func(t0, t1 time.Time) bool) {
	body := d.bodies[int(d.next.Add(1)-1)%len(d.bodies)]
	t0 := time.Now()
	resp, err := d.client.Post(d.target, "application/json", bytes.NewReader(body))
	code := 0
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		code = resp.StatusCode
	}
	t1 := time.Now()
	if !record(t0, t1) {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case err != nil:
		d.fail(err.Error())
	case code == http.StatusOK:
		d.acc = append(d.acc, t1.Sub(t0))
	case code == http.StatusTooManyRequests:
		d.rej = append(d.rej, t1.Sub(t0))
	default:
		d.fail(fmt.Sprintf("status %d", code))
	}
}

// fail counts an other outcome; d.mu must be held.
func (d *driver) fail(s string) {
	d.other++
	if d.first == "" {
		d.first = s
	}
}

func (d *driver) closed(conc int, warmup, dur time.Duration) error {
	start := time.Now()
	mark, stop := start.Add(warmup), start.Add(warmup+dur)
	inWindow := func(t0, t1 time.Time) bool { return !t0.Before(mark) && !t1.After(stop) }
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for time.Now().Before(stop) {
				d.do(inWindow)
			}
		})
	}
	wg.Wait()
	return d.print(result{Concurrency: conc, Seconds: dur.Seconds()})
}

func (d *driver) open(rate float64, dur time.Duration, maxInflight int) error {
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxInflight)
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	all := func(time.Time, time.Time) bool { return true }
	for i := range int(dur.Seconds() * rate) {
		if w := time.Until(start.Add(time.Duration(i) * interval)); w > 0 {
			time.Sleep(w) // pacing the open loop, not waiting for an event
		}
		select {
		case sem <- struct{}{}:
		default:
			d.mu.Lock()
			d.fail("too many requests in flight")
			d.mu.Unlock()
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			d.do(all)
		})
	}
	wg.Wait()
	return d.print(result{Rate: rate, Seconds: dur.Seconds()})
}

func (d *driver) print(r result) error {
	r.Label, r.URL = d.label, d.target
	r.Accepted, r.Rejected = summarize(d.acc), summarize(d.rej)
	r.Other, r.FirstOther = d.other, d.first
	r.RPS = float64(r.Accepted.Count) / r.Seconds
	return json.NewEncoder(os.Stdout).Encode(r)
}

func summarize(ds []time.Duration) summary {
	if len(ds) == 0 {
		return summary{}
	}
	slices.Sort(ds)
	pct := func(q float64) float64 {
		i := min(max(int(q*float64(len(ds))+0.5)-1, 0), len(ds)-1)
		return float64(ds[i]) / float64(time.Microsecond)
	}
	return summary{Count: len(ds), P50us: pct(0.5), P99us: pct(0.99), MaxUs: float64(ds[len(ds)-1]) / float64(time.Microsecond)}
}
