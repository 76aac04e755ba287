// Command loadgen is the closed-loop HTTP load generator of bench/run.sh:
// -c goroutines each send the same POST, wait for the whole answer, and
// send the next, over keep-alive connections (when the server keeps them),
// for -warmup and then -d. It prints one JSON object for the measured
// window: requests, errors (transport errors and non-200 answers),
// requests/s and latency percentiles.
//
// With -pid it also reads the CPU time (utime+stime, /proc/PID/stat) of
// that process and all its descendants at the start and the end of the
// measured window, and reports it per request: the server's cost of one
// answer. It reports its own CPU time the same way, since on a small
// machine the generator competes with the server for the cores.
//
// It only targets loopback addresses; it is a benchmark tool for one
// machine, not a load-testing tool.
//
//	loadgen -url http://127.0.0.1:8080/predict -body '{"instances": [[5.1,3.5,1.4,0.2]]}' -c 64 -d 5s -warmup 1s -pid 1234
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
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// result is what loadgen prints.
type result struct {
	Label       string  `json:"label,omitempty"`
	URL         string  `json:"url"`
	Concurrency int     `json:"concurrency"`
	Seconds     float64 `json:"seconds"`
	Requests    int     `json:"requests"`
	Errors      int     `json:"errors"`
	RPS         float64 `json:"rps"`
	P50us       float64 `json:"p50_us"`
	P90us       float64 `json:"p90_us"`
	P99us       float64 `json:"p99_us"`
	MaxUs       float64 `json:"max_us"`
	// ServerCPUus is the CPU time of -pid and its descendants per
	// request, in µs; 0 without -pid.
	ServerCPUus float64 `json:"server_cpu_us_per_req,omitempty"`
	// ClientCPUus is loadgen's own CPU time per request, in µs.
	ClientCPUus float64 `json:"client_cpu_us_per_req"`
	// OtherCores is the CPU time the rest of the machine used over the
	// window (all cores busy, from /proc/stat, less the server and
	// loadgen), in cores: what else competed for the machine.
	OtherCores float64 `json:"other_cpu_cores"`
	FirstError string  `json:"first_error,omitempty"`
}

func main() {
	var (
		target  = flag.String("url", "", "`URL` to POST to (loopback only)")
		body    = flag.String("body", "", "request body; @FILE reads it from FILE")
		ctype   = flag.String("content-type", "application/json", "Content-Type of the requests")
		conc    = flag.Int("c", 1, "concurrent requests (closed loop)")
		dur     = flag.Duration("d", 5*time.Second, "measured duration")
		warmup  = flag.Duration("warmup", time.Second, "unmeasured duration before -d")
		timeout = flag.Duration("timeout", 10*time.Second, "per-request timeout")
		pid     = flag.Int("pid", 0, "server process `id` whose CPU time (with its descendants) to report per request")
		label   = flag.String("label", "", "label copied into the output")
	)
	flag.Parse()
	if err := run(*target, *body, *ctype, *conc, *dur, *warmup, *timeout, *pid, *label); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(target, body, ctype string, conc int, dur, warmup, timeout time.Duration, pid int, label string) error {
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-url %q: only loopback targets", target)
	}
	if conc < 1 || dur <= 0 || warmup < 0 {
		return fmt.Errorf("want -c >= 1, -d > 0, -warmup >= 0")
	}
	payload := []byte(body)
	if f, ok := strings.CutPrefix(body, "@"); ok {
		if payload, err = os.ReadFile(f); err != nil {
			return err
		}
	}
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

	// The workers send from start to stop; the requests that end in
	// [mark, stop) are counted: completions per second, whenever each began.
	start := time.Now()
	mark := start.Add(warmup)
	stop := mark.Add(dur)
	var (
		wg       sync.WaitGroup
		errs     atomic.Int64
		firstErr atomic.Value
		lat      = make([][]time.Duration, conc)
	)
	for i := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ls := make([]time.Duration, 0, 1<<14)
			for {
				t0 := time.Now()
				if !t0.Before(stop) {
					break
				}
				ok, err := do(client, target, ctype, payload)
				t1 := time.Now()
				if t1.Before(mark) || !t1.Before(stop) {
					continue
				}
				if !ok {
					errs.Add(1)
					if err != nil {
						firstErr.CompareAndSwap(nil, err.Error())
					}
					continue
				}
				ls = append(ls, t1.Sub(t0))
			}
			lat[i] = ls
		}()
	}
	// Sample the CPU clocks at the edges of the measured window.
	var cpu0, cpu1 time.Duration
	var cpuErr error
	time.Sleep(time.Until(mark))
	if pid > 0 {
		cpu0, cpuErr = treeCPU(pid)
	}
	self0 := selfCPU()
	busy0 := machineBusy()
	time.Sleep(time.Until(stop))
	if pid > 0 && cpuErr == nil {
		cpu1, cpuErr = treeCPU(pid)
	}
	self1 := selfCPU()
	busy1 := machineBusy()
	wg.Wait()
	client.CloseIdleConnections()
	if cpuErr != nil {
		return cpuErr
	}

	all := slices.Concat(lat...)
	slices.Sort(all)
	n := len(all)
	res := result{
		Label: label, URL: target, Concurrency: conc, Seconds: dur.Seconds(),
		Requests: n, Errors: int(errs.Load()),
		RPS:   float64(n) / dur.Seconds(),
		P50us: us(pct(all, 0.50)), P90us: us(pct(all, 0.90)), P99us: us(pct(all, 0.99)),
	}
	if busy0 > 0 && busy1 > 0 {
		other := (busy1 - busy0) - (self1 - self0) - (cpu1 - cpu0)
		res.OtherCores = max(0, other.Seconds()/dur.Seconds())
	}
	if n > 0 {
		res.MaxUs = us(all[n-1])
		res.ClientCPUus = us(self1-self0) / float64(n)
		if pid > 0 {
			res.ServerCPUus = us(cpu1-cpu0) / float64(n)
		}
	}
	if e, ok := firstErr.Load().(string); ok {
		res.FirstError = e
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// do sends one request and reads the whole answer. ok is false for a
// transport error (err set) or a status other than 200.
func do(client *http.Client, target, ctype string, payload []byte) (ok bool, err error) {
	resp, err := client.Post(target, ctype, bytes.NewReader(payload))
	if err != nil {
		return false, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return false, err
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("status %d", resp.StatusCode)
	}
	return true, nil
}

// pct returns the q-quantile of sorted (nearest rank), 0 when empty.
func pct(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// clockTick is the unit of utime and stime in /proc/PID/stat: USER_HZ,
// which is 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// treeCPU returns the user+system CPU time of pid and every live
// descendant of it.
func treeCPU(pid int) (time.Duration, error) {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return 0, err
	}
	children := map[int][]int{}
	ticks := map[int]int64{}
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // exited meanwhile
		}
		// The command name, field 2, is in parentheses and may hold
		// spaces; the fields after its closing parenthesis start at 3.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		fs := strings.Fields(string(b[i+1:]))
		if len(fs) < 13 {
			continue
		}
		p, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		ppid, _ := strconv.Atoi(fs[1])            // field 4
		ut, _ := strconv.ParseInt(fs[11], 10, 64) // field 14
		st, _ := strconv.ParseInt(fs[12], 10, 64) // field 15
		children[ppid] = append(children[ppid], p)
		ticks[p] = ut + st
	}
	if _, ok := ticks[pid]; !ok {
		return 0, fmt.Errorf("process %d not found", pid)
	}
	var sum int64
	for todo := []int{pid}; len(todo) > 0; {
		p := todo[len(todo)-1]
		todo = append(todo[:len(todo)-1], children[p]...)
		sum += ticks[p]
	}
	return time.Duration(sum) * clockTick, nil
}

// machineBusy returns the CPU time all cores spent neither idle nor
// waiting for I/O since boot, or 0 when /proc/stat cannot be read.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	fs := strings.Fields(string(line))
	if len(fs) < 6 || fs[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, f := range fs[1:] {
		v, _ := strconv.ParseInt(f, 10, 64)
		switch i {
		case 3, 4: // idle, iowait
		case 8, 9: // guest, guest_nice: already counted in user and nice
		default:
			busy += v
		}
	}
	return time.Duration(busy) * clockTick
}

// selfCPU returns this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
