package autoscale

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
//	spec key=value...       set the Spec: min max metric target zero (bool)
//	                        grace stable panic threshold up down
//	inputs key=value...     set Inputs: current pending ttr rollout (bool);
//	                        they persist; current also becomes each Desired
//	at D                    set the clock
//	sample load=X ready=N   record a sample now
//	run D load=X[..Y] ready=N|follow [every=D]
//	                        record one sample a second for D, the load going
//	                        linearly from X to Y; ready=follow uses the
//	                        replicas decided last; every=D decides (and
//	                        prints) every D
//	decide                  decide now and print the decision and its inputs
func TestScenarios(t *testing.T) {
	scenario.Run(t, "testdata/*.txt", *update, runScript)
}

func runScript(t *testing.T, script string) string {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	var (
		spec Spec
		st   State
		in   Inputs
		out  strings.Builder
	)
	decide := func() Decision {
		d := Decide(now, spec, &st, in)
		in.Current = d.Desired
		return d
	}
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
			x, err := strconv.ParseFloat(s, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return x
		}
		var res []string
		switch fs[0] {
		case "spec":
			spec = Spec{}
			for k, v := range kv {
				switch k {
				case "min":
					spec.MinReplicas = int(num(v))
				case "max":
					spec.MaxReplicas = int(num(v))
				case "metric":
					spec.Metric = Metric(v)
				case "target":
					spec.Target = num(v)
				case "zero":
					spec.ScaleToZero = v == "true"
				case "grace":
					spec.ScaleToZeroGrace = dur(v)
				case "stable":
					spec.StableWindow = dur(v)
				case "panic":
					spec.PanicWindow = dur(v)
				case "threshold":
					spec.PanicThreshold = num(v)
				case "up":
					spec.MaxScaleUpRate = num(v)
				case "down":
					spec.MaxScaleDownRate = num(v)
				default:
					t.Fatalf("%s: unknown key %q", line, k)
				}
			}
			if err := spec.Validate(); err != nil {
				res = append(res, err.Error())
			}
		case "inputs":
			for k, v := range kv {
				switch k {
				case "current":
					in.Current = int(num(v))
				case "pending":
					in.Pending = int(num(v))
				case "ttr":
					in.TimeToReady = dur(v)
				case "rollout":
					in.RolloutInProgress = v == "true"
				default:
					t.Fatalf("%s: unknown key %q", line, k)
				}
			}
		case "at":
			now = t0.Add(dur(fs[1]))
		case "sample":
			st.Record(Sample{Time: now, Load: num(kv["load"]), Ready: int(num(kv["ready"]))})
		case "run":
			total := dur(fs[1])
			from, to, ramp := strings.Cut(kv["load"], "..")
			lo, hi := num(from), num(from)
			if ramp {
				hi = num(to)
			}
			var every time.Duration
			if e, ok := kv["every"]; ok {
				every = dur(e)
			}
			start := now
			steps := int(total / time.Second)
			for i := 1; i <= steps; i++ {
				now = start.Add(time.Duration(i) * time.Second)
				ready := in.Current
				if kv["ready"] != "follow" {
					ready = int(num(kv["ready"]))
				}
				load := lo + (hi-lo)*float64(i)/float64(steps)
				st.Record(Sample{Time: now, Load: load, Ready: ready})
				if every > 0 && now.Sub(start)%every == 0 {
					res = append(res, fmt.Sprintf("%v load %.1f ready %d: %v", now.Sub(t0), load, ready, decide()))
				}
			}
		case "decide":
			d := decide()
			res = append(res, d.String(), fmt.Sprintf("  at %v ready=%d current=%d pending=%d stable=%.1f panic=%.1f slope=%+.2f/s predicted=%.1f lead=%v idle=%v rollout=%v",
				now.Sub(t0), d.Ready, d.Current, d.Pending, d.StableLoad, d.PanicLoad, d.Slope, d.PredictedLoad, d.LeadTime, d.Idle, d.RolloutInProgress))
		default:
			t.Fatalf("unknown command %q", line)
		}
		for _, r := range res {
			out.WriteString("> " + r + "\n")
		}
	}
	return out.String()
}
