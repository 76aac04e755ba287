package balance

import (
	"bufio"
	"flag"
	"fmt"
	"github.com/shoal-ml/shoal/internal/scenario"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the expected output of testdata/*.txt scenarios")

// TestEjectScenarios runs the scripts in testdata/eject*.txt. Each line is
// a command; the lines starting with "> " after it are its output, which
// -update regenerates. Commands:
//
//	config failures=N base=D max=D percent=N factor=F min=D
//	replicas ADDR...
//	at D                     set the clock (offset from the start)
//	fail ADDR | ok ADDR      record an outcome
//	latency ADDR=D...        judge latencies
//	ejected                  list ejected replicas and until when
func TestEjectScenarios(t *testing.T) {
	scenario.Run(t, "testdata/eject*.txt", *update, runEjectScript)
}

func runEjectScript(t *testing.T, script string) string {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	var cfg EjectConfig
	var o *Outliers
	var out strings.Builder
	sc := bufio.NewScanner(strings.NewReader(script))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "> ") {
			continue // old output
		}
		out.WriteString(line + "\n")
		fs := strings.Fields(line)
		if len(fs) == 0 || strings.HasPrefix(fs[0], "#") {
			continue
		}
		res := ""
		switch fs[0] {
		case "config":
			cfg = EjectConfig{}
			for _, kv := range fs[1:] {
				k, v, _ := strings.Cut(kv, "=")
				switch k {
				case "failures":
					cfg.ConsecutiveFailures, _ = strconv.Atoi(v)
				case "percent":
					cfg.MaxEjectedPercent, _ = strconv.Atoi(v)
				case "factor":
					cfg.LatencyFactor, _ = strconv.ParseFloat(v, 64)
				case "base", "max", "min":
					d, err := time.ParseDuration(v)
					if err != nil {
						t.Fatalf("%s: %v", line, err)
					}
					*map[string]*time.Duration{"base": &cfg.BaseEjection, "max": &cfg.MaxEjection, "min": &cfg.MinLatency}[k] = d
				}
			}
			if err := cfg.Validate(); err != nil {
				res = err.Error()
			}
		case "replicas":
			o = NewOutliers(cfg, fs[1:])
		case "at":
			d, err := time.ParseDuration(fs[1])
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			now = t0.Add(d)
		case "fail", "ok":
			if o.Result(now, fs[1], fs[0] == "ok") {
				res = "ejected " + fs[1]
			}
		case "latency":
			lat := map[string]time.Duration{}
			for _, kv := range fs[1:] {
				k, v, _ := strings.Cut(kv, "=")
				lat[k], _ = time.ParseDuration(v)
			}
			if ej := o.Latency(now, lat); len(ej) > 0 {
				res = "ejected " + strings.Join(ej, " ")
			}
		case "ejected":
			var parts []string
			for _, a := range o.order {
				if o.Ejected(now, a) {
					parts = append(parts, fmt.Sprintf("%s until %s", a, o.Until(a).Sub(t0)))
				}
			}
			res = strings.Join(parts, ", ")
			if res == "" {
				res = "none"
			}
		default:
			t.Fatalf("unknown command %q", line)
		}
		if res != "" {
			out.WriteString("> " + res + "\n")
		}
	}
	return out.String()
}
