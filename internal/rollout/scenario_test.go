package rollout

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

// TestScenarios runs the scripts in testdata/*.txt. Each line is a command;
// the lines starting with "> " after it are its output, which -update
// regenerates. The clock starts at 0s. Commands:
//
//	at D                   set the clock
//
//	rolling desired=N [old=N/R] [new=N/R] [surge=V] [unavailable=V] [deadline=D]
//	                       start a rolling update with N replicas, R of them
//	                       ready (default: desired old ones, all ready)
//	plan [paused]          plan, print, and apply the plan: start new
//	                       replicas (not ready), stop old ones (unready first)
//	ready N                N more new replicas become ready
//	auto                   plan and make every new replica ready, until done
//
//	canary steps=W/D,... [maxerr=P%] [errinc=P%] [latency=X] [min=N]
//	                       set the canary spec; the status starts empty
//	step [canary=REQ/ERR/P99] [stable=REQ/ERR/P99] [cmd=C]
//	                       call Step, print the decision, keep its status
func TestScenarios(t *testing.T) {
	scenario.Run(t, "testdata/*.txt", *update, runScript)
}

func runScript(t *testing.T, script string) string {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	var (
		rolling Rolling
		rs      RollingStatus
		canary  Canary
		cs      CanaryStatus
		out     strings.Builder
	)
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
		kv := map[string]string{}
		for _, f := range fs[1:] {
			k, v, _ := strings.Cut(f, "=")
			kv[k] = v
		}
		dur := func(s string) time.Duration {
			d, err := time.ParseDuration(s)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return d
		}
		num := func(s string) float64 {
			x, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			if strings.HasSuffix(s, "%") {
				x /= 100
			}
			return x
		}
		metrics := func(s string) Metrics {
			if s == "" {
				return Metrics{}
			}
			p := strings.Split(s, "/")
			if len(p) != 3 {
				t.Fatalf("%s: metrics %q are not REQ/ERR/P99", line, s)
			}
			return Metrics{Requests: int(num(p[0])), Errors: int(num(p[1])), P99: dur(p[2])}
		}
		var res []string
		plan := func() RollingPlan {
			p := PlanRolling(now, rolling, rs)
			rs.New += p.Start
			unready := min(p.Stop, rs.Old-rs.OldReady)
			rs.OldReady -= p.Stop - unready
			rs.Old -= p.Stop
			res = append(res, fmt.Sprintf("%v -> old %d/%d new %d/%d", p, rs.OldReady, rs.Old, rs.NewReady, rs.New))
			return p
		}
		switch fs[0] {
		case "at":
			now = t0.Add(dur(fs[1]))
		case "rolling":
			rolling = Rolling{MaxSurge: IntOrPercent(kv["surge"]), MaxUnavailable: IntOrPercent(kv["unavailable"])}
			if v, ok := kv["deadline"]; ok {
				rolling.ProgressDeadline = dur(v)
			}
			if err := rolling.Validate(); err != nil {
				res = append(res, err.Error())
			}
			rs = RollingStatus{Desired: int(num(kv["desired"])), Progressed: now}
			rs.Old, rs.OldReady = rs.Desired, rs.Desired
			count := func(k string, n, ready *int) {
				if v, ok := kv[k]; ok {
					a, b, _ := strings.Cut(v, "/")
					*n, *ready = int(num(a)), int(num(b))
				}
			}
			count("old", &rs.Old, &rs.OldReady)
			count("new", &rs.New, &rs.NewReady)
		case "plan":
			_, rs.Paused = kv["paused"]
			plan()
		case "ready":
			rs.NewReady = min(rs.New, rs.NewReady+int(num(fs[1])))
			rs.Progressed = now
		case "auto":
			for range 50 {
				if plan().Done {
					break
				}
				if rs.NewReady < rs.New {
					rs.NewReady = rs.New
					rs.Progressed = now
				}
			}
		case "canary":
			canary = Canary{}
			for _, s := range strings.Split(kv["steps"], ",") {
				w, d, _ := strings.Cut(s, "/")
				step := CanaryStep{Weight: int(num(w))}
				if d != "" {
					step.Pause = dur(d)
				}
				canary.Steps = append(canary.Steps, step)
			}
			for k, v := range kv {
				switch k {
				case "maxerr":
					canary.Analysis.MaxErrorRate = num(v)
				case "errinc":
					canary.Analysis.MaxErrorRateIncrease = num(v)
				case "latency":
					canary.Analysis.MaxLatencyRatio = num(v)
				case "min":
					canary.Analysis.MinRequests = int(num(v))
				}
			}
			if err := canary.Validate(); err != nil {
				res = append(res, err.Error())
			}
			cs = CanaryStatus{}
		case "step":
			in := CanaryInput{Canary: metrics(kv["canary"]), Stable: metrics(kv["stable"])}
			if c, ok := kv["cmd"]; ok {
				cmd, err := ParseCommand(c)
				if err != nil {
					res = append(res, "error: "+err.Error())
					break
				}
				in.Command = cmd
			}
			d, err := Step(now, canary, cs, in)
			if err != nil {
				res = append(res, "error: "+err.Error())
				break
			}
			cs = d.Status
			res = append(res, d.String())
		default:
			t.Fatalf("unknown command %q", line)
		}
		for _, r := range res {
			out.WriteString("> " + r + "\n")
		}
	}
	return out.String()
}
