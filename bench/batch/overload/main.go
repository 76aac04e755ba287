// Command overload is the open-loop load generator of bench/batch/run.sh:
// it starts a POST every 1/-rate seconds for -d, whatever the answers, so
// that the offered load does not drop when the server slows down (a
// closed-loop generator, like bench/loadgen, cannot offer more than the
// server accepts). It prints one JSON object: requests offered, accepted
// (200), rejected (429) and other outcomes, with latency percentiles of
// the accepted and of the rejected requests.
//
// It only targets loopback addresses.
//
//	overload -url http://127.0.0.1:18090/v2/models/batched/infer -body @row.json -rate 8000 -d 5s
package main

import (
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
	"strings"
	"sync"
	"time"
)

type summary struct {
	Count int     `json:"count"`
	P50us float64 `json:"p50_us"`
	P99us float64 `json:"p99_us"`
	MaxUs float64 `json:"max_us"`
}

type result struct {
	URL        string  `json:"url"`
	Rate       float64 `json:"offered_rps"`
	Seconds    float64 `json:"seconds"`
	Offered    int     `json:"offered"`
	Accepted   summary `json:"accepted"`
	Rejected   summary `json:"rejected"`
	Other      int     `json:"other"` // transport errors and other statuses
	AcceptedPS float64 `json:"accepted_rps"`
	FirstOther string  `json:"first_other,omitempty"`
}

func main() {
	var (
		target   = flag.String("url", "", "`URL` to POST to (loopback only)")
		body     = flag.String("body", "", "request body; @FILE reads it from FILE")
		rate     = flag.Float64("rate", 1000, "requests started per second")
		dur      = flag.Duration("d", 5*time.Second, "duration")
		inflight = flag.Int("max-inflight", 4096, "requests in flight beyond which a start is counted as other, not sent")
	)
	flag.Parse()
	if err := run(*target, *body, *rate, *dur, *inflight); err != nil {
		fmt.Fprintln(os.Stderr, "overload:", err)
		os.Exit(1)
	}
}

func run(target, body string, rate float64, dur time.Duration, maxInflight int) error {
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-url %q: only loopback targets", target)
	}
	if rate <= 0 || dur <= 0 {
		return fmt.Errorf("want -rate > 0 and -d > 0")
	}
	payload := []byte(body)
	if f, ok := strings.CutPrefix(body, "@"); ok {
		if payload, err = os.ReadFile(f); err != nil {
			return err
		}
	}
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy: nil, MaxIdleConns: maxInflight, MaxIdleConnsPerHost: maxInflight,
			IdleConnTimeout: time.Minute, DisableCompression: true,
		},
	}
	var (
		mu       sync.Mutex
		acc, rej []time.Duration
		other    int
		first    string
		wg       sync.WaitGroup
		sem      = make(chan struct{}, maxInflight)
	)
	fail := func(s string) {
		mu.Lock()
		other++
		if first == "" {
			first = s
		}
		mu.Unlock()
	}
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	n := int(dur.Seconds() * rate)
	for i := range n {
		// Open loop: start request i at start + i*interval.
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		select {
		case sem <- struct{}{}:
		default:
			fail("too many requests in flight")
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			t0 := time.Now()
			resp, err := client.Post(target, "application/json", bytes.NewReader(payload))
			if err != nil {
				fail(err.Error())
				return
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			took := time.Since(t0)
			switch {
			case err != nil:
				fail(err.Error())
			case resp.StatusCode == http.StatusOK:
				mu.Lock()
				acc = append(acc, took)
				mu.Unlock()
			case resp.StatusCode == http.StatusTooManyRequests:
				mu.Lock()
				rej = append(rej, took)
				mu.Unlock()
			default:
				fail(fmt.Sprintf("status %d", resp.StatusCode))
			}
		})
	}
	wg.Wait()
	res := result{URL: target, Rate: rate, Seconds: dur.Seconds(), Offered: n,
		Accepted: summarize(acc), Rejected: summarize(rej), Other: other, FirstOther: first,
		AcceptedPS: float64(len(acc)) / dur.Seconds()}
	return json.NewEncoder(os.Stdout).Encode(res)
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
