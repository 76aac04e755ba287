// Command report turns the raw results of bench/run.sh into the markdown
// of docs/benchmarks.md: the median of every (server, concurrency) cell
// over the repeats, the ratios the "shoal serve" issue asks for, and the
// startup and memory numbers against their goals.
//
// It reads, in -dir: loadgen.jsonl (one loadgen result per line, labelled
// flask, shoal, shoal-v2 or ceiling), startup.json (the startup command's
// output) and rss.jsonl (lines {"when": ..., "vmrss_kib": ..., "vmhwm_kib": ...}).
// A missing file leaves its section out.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// Goals from the "shoal serve" issue.
const (
	goalRatio   = 10  // shoal /predict req/s at c=64 over flask's
	goalRSSMiB  = 30  // RSS of a replica serving a small model
	goalReadyMs = 100 // exec to ready
)

// rows are the table's rows, in order: label and what the reader sees.
var rows = []struct{ label, name string }{
	{"flask", "Flask + gunicorn -w 2, `POST /predict`"},
	{"shoal", "shoal serve, `POST /predict`"},
	{"shoal-v2", "shoal serve, `POST /v2/models/iris/infer`"},
	{"ceiling", "ceiling (bare net/http), `POST /predict`"},
}

type loadResult struct {
	Label       string  `json:"label"`
	Concurrency int     `json:"concurrency"`
	Requests    int     `json:"requests"`
	Errors      int     `json:"errors"`
	RPS         float64 `json:"rps"`
	P50us       float64 `json:"p50_us"`
	P99us       float64 `json:"p99_us"`
	ServerCPUus float64 `json:"server_cpu_us_per_req"`
	ClientCPUus float64 `json:"client_cpu_us_per_req"`
	OtherCores  float64 `json:"other_cpu_cores"`
}

type startupResult struct {
	Label        string    `json:"label"`
	ReadyMs      []float64 `json:"ready_ms"`
	MedianMs     float64   `json:"median_ready_ms"`
	MinMs        float64   `json:"min_ready_ms"`
	MaxMs        float64   `json:"max_ready_ms"`
	MedianRSSKiB int64     `json:"median_rss_kib"`
}

type rssResult struct {
	When string `json:"when"`
	RSS  int64  `json:"vmrss_kib"`
	HWM  int64  `json:"vmhwm_kib"`
}

func main() {
	dir := flag.String("dir", ".", "`directory` holding run.sh's raw results")
	flag.Parse()
	if err := report(os.Stdout, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func report(w io.Writer, dir string) error {
	loads, err := readAll[loadResult](filepath.Join(dir, "loadgen.jsonl"))
	if err != nil {
		return err
	}
	rss, err := readAll[rssResult](filepath.Join(dir, "rss.jsonl"))
	if err != nil {
		return err
	}
	sts, err := readAll[startupResult](filepath.Join(dir, "startup.json"))
	if err != nil {
		return err
	}

	type key struct {
		label string
		c     int
	}
	cells := map[key][]loadResult{}
	var concs []int
	for _, r := range loads {
		k := key{r.Label, r.Concurrency}
		cells[k] = append(cells[k], r)
		if !slices.Contains(concs, r.Concurrency) {
			concs = append(concs, r.Concurrency)
		}
	}
	slices.Sort(concs)
	med := func(label string, c int, f func(loadResult) float64) (float64, bool) {
		rs := cells[key{label, c}]
		if len(rs) == 0 {
			return 0, false
		}
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return median(v), true
	}

	if len(loads) > 0 {
		fmt.Fprintf(w, "| server, endpoint | c | req/s | p50 ms | p99 ms | server CPU µs/req | loadgen CPU µs/req | other CPU, cores | runs | errors |\n")
		fmt.Fprintf(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, row := range rows {
			for _, c := range concs {
				rs := cells[key{row.label, c}]
				if len(rs) == 0 {
					continue
				}
				g := func(f func(loadResult) float64) float64 { v, _ := med(row.label, c, f); return v }
				errs := 0
				for _, r := range rs {
					errs += r.Errors
				}
				fmt.Fprintf(w, "| %s | %d | %.0f | %.2f | %.2f | %.0f | %.0f | %.2f | %d | %d |\n", row.name, c,
					g(func(r loadResult) float64 { return r.RPS }),
					g(func(r loadResult) float64 { return r.P50us / 1000 }),
					g(func(r loadResult) float64 { return r.P99us / 1000 }),
					g(func(r loadResult) float64 { return r.ServerCPUus }),
					g(func(r loadResult) float64 { return r.ClientCPUus }),
					g(func(r loadResult) float64 { return r.OtherCores }),
					len(rs), errs)
			}
		}
		fmt.Fprintln(w)
		c := concs[len(concs)-1]
		ratio(w, cells[key{"shoal", c}], cells[key{"flask", c}], fmt.Sprintf("shoal /predict ÷ Flask at c=%d", c), goalRatio)
		ratio(w, cells[key{"shoal", c}], cells[key{"ceiling", c}], fmt.Sprintf("shoal /predict ÷ ceiling at c=%d", c), 0)
		ratio(w, cells[key{"shoal-v2", c}], cells[key{"ceiling", c}], fmt.Sprintf("shoal /v2 infer ÷ ceiling at c=%d", c), 0)
	}
	for _, st := range sts {
		fmt.Fprintf(w, "- shoal serve %s, exec to first 200 from /v2/health/ready: median **%.1f ms** (min %.1f, max %.1f, %d runs; goal < %d ms: %s); VmRSS at ready %.1f MiB\n",
			st.Label, st.MedianMs, st.MinMs, st.MaxMs, len(st.ReadyMs), goalReadyMs, verdict(st.MedianMs < goalReadyMs), mib(st.MedianRSSKiB))
	}
	for _, r := range rss {
		fmt.Fprintf(w, "- shoal serve VmRSS %s: **%.1f MiB** (peak VmHWM %.1f MiB; goal < %d MiB: %s)\n",
			r.When, mib(r.RSS), mib(r.HWM), goalRSSMiB, verdict(mib(r.HWM) < goalRSSMiB))
	}
	return nil
}

// ratio writes the req/s ratio of a's runs over b's: the median of the
// ratios of the runs of the same repeat (run.sh runs them one after the
// other, so they share what else the machine was doing), each of those,
// the ratio of the medians, and the median server CPU per request of each. With
// goal > 0 it says whether the paired median reaches it.
func ratio(w io.Writer, a, b []loadResult, what string, goal float64) {
	n := min(len(a), len(b))
	if n == 0 {
		return
	}
	var paired, ra, rb, ca, cb []float64
	each := ""
	for i := range n {
		paired = append(paired, a[i].RPS/b[i].RPS)
		each += fmt.Sprintf(" %.2f", a[i].RPS/b[i].RPS)
	}
	for _, r := range a {
		ra, ca = append(ra, r.RPS), append(ca, r.ServerCPUus)
	}
	for _, r := range b {
		rb, cb = append(rb, r.RPS), append(cb, r.ServerCPUus)
	}
	m := median(paired)
	fmt.Fprintf(w, "- %s: req/s **%.2fx** (median over the repeats, each:%s; ratio of the medians %.2fx)", what, m, each, median(ra)/median(rb))
	if goal > 0 {
		fmt.Fprintf(w, "; goal >= %gx: %s", goal, verdict(m >= goal))
	}
	fmt.Fprintf(w, "; server CPU per request %.0f µs vs %.0f µs (%.2fx)\n", median(ca), median(cb), median(ca)/median(cb))
}

// readAll decodes every JSON value in file. A missing file is not an
// error.
func readAll[T any](file string) ([]T, error) {
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var vs []T
	dec := json.NewDecoder(bufio.NewReader(f))
	for {
		var v T
		if err := dec.Decode(&v); err == io.EOF {
			return vs, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Base(file), err)
		}
		vs = append(vs, v)
	}
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}
