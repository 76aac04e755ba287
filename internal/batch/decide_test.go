package batch

import (
	"bufio"
	"flag"
	"fmt"
	golden "github.com/shoal-ml/shoal/internal/scenario"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.txt with the decisions made")

// TestScenarios runs the scripts in testdata/*.txt. Each line is a command;
// the lines starting with "> " after it are its output, which the test
// regenerates and compares (rewrites, with -update). Commands:
//
//	policy max_batch_size=N [max_queue_delay=D] [preferred=N,N] [max_queue_size=N] [executions=N]
//	observe rows=N took=D            feed the latency model
//	at T admit NAME rows=N [prio=P] [deadline=T]
//	at T decide                      Decide, and act on it
//	at T finish                      the oldest running batch ends
//
// Times T are offsets from the start of the scenario.
func TestScenarios(t *testing.T) {
	golden.Run(t, "testdata/*.txt", *update, runScenario)
}

type scenario struct {
	p       Policy
	s       State
	names   []string   // in step with s.Queue
	batches [][]string // in step with s.Running
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func runScenario(t *testing.T, script string) string {
	var sc scenario
	var out strings.Builder
	sn := bufio.NewScanner(strings.NewReader(script))
	for line := 1; sn.Scan(); line++ {
		text := sn.Text()
		if strings.HasPrefix(text, "> ") {
			continue
		}
		out.WriteString(text + "\n")
		cmd := strings.TrimSpace(text)
		if cmd == "" || strings.HasPrefix(cmd, "#") {
			continue
		}
		res, err := sc.exec(cmd)
		if err != nil {
			t.Fatalf("line %d: %q: %v", line, cmd, err)
		}
		for _, r := range res {
			out.WriteString("> " + r + "\n")
		}
	}
	return out.String()
}

func args(fields []string) (map[string]string, error) {
	m := map[string]string{}
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("want key=value, got %q", f)
		}
		m[k] = v
	}
	return m, nil
}

func (sc *scenario) exec(cmd string) ([]string, error) {
	f := strings.Fields(cmd)
	now := t0
	if f[0] == "at" {
		if len(f) < 3 {
			return nil, fmt.Errorf("want: at T command")
		}
		d, err := time.ParseDuration(f[1])
		if err != nil {
			return nil, err
		}
		now, f = t0.Add(d), f[2:]
	}
	switch f[0] {
	case "policy":
		a, err := args(f[1:])
		if err != nil {
			return nil, err
		}
		sc.p = Policy{}
		for k, v := range a {
			var err error
			switch k {
			case "max_batch_size":
				sc.p.MaxBatchSize, err = strconv.Atoi(v)
			case "max_queue_delay":
				sc.p.MaxQueueDelay, err = time.ParseDuration(v)
			case "max_queue_size":
				sc.p.MaxQueueSize, err = strconv.Atoi(v)
			case "executions":
				sc.p.Executions, err = strconv.Atoi(v)
			case "wait_for_arriving":
				sc.p.WaitForArriving, err = strconv.ParseBool(v)
			case "preferred":
				for s := range strings.SplitSeq(v, ",") {
					n, err := strconv.Atoi(s)
					if err != nil {
						return nil, err
					}
					sc.p.PreferredBatchSizes = append(sc.p.PreferredBatchSizes, n)
				}
			default:
				return nil, fmt.Errorf("unknown policy field %q", k)
			}
			if err != nil {
				return nil, err
			}
		}
		return nil, nil
	case "observe":
		a, err := args(f[1:])
		if err != nil {
			return nil, err
		}
		rows, err := strconv.Atoi(a["rows"])
		if err != nil {
			return nil, err
		}
		took, err := time.ParseDuration(a["took"])
		if err != nil {
			return nil, err
		}
		sc.s.Latency.Observe(rows, took)
		return []string{fmt.Sprintf("estimate 1:%v %d:%v", sc.s.Latency.Estimate(1), sc.p.MaxBatchSize, sc.s.Latency.Estimate(sc.p.MaxBatchSize))}, nil
	case "admit":
		if len(f) < 2 {
			return nil, fmt.Errorf("want: admit NAME rows=N")
		}
		name := f[1]
		a, err := args(f[2:])
		if err != nil {
			return nil, err
		}
		it := Item{Arrival: now, Priority: 1}
		if it.Rows, err = strconv.Atoi(a["rows"]); err != nil {
			return nil, err
		}
		if v, ok := a["prio"]; ok {
			if it.Priority, err = strconv.Atoi(v); err != nil {
				return nil, err
			}
		}
		if v, ok := a["deadline"]; ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				return nil, err
			}
			it.Deadline = t0.Add(d)
		}
		r, retry := Admit(&sc.p, &sc.s, []Item{it}, now)
		if r != Admitted {
			return []string{fmt.Sprintf("reject %s: %v, retry after %v", name, r, retry)}, nil
		}
		i := Insert(sc.s.Queue, it)
		sc.s.Queue = slices.Insert(sc.s.Queue, i, it)
		sc.names = slices.Insert(sc.names, i, name)
		return []string{fmt.Sprintf("admit %s; queue %v", name, sc.names)}, nil
	case "decide":
		var res []string
		for {
			d := Decide(&sc.p, &sc.s, now)
			var parts []string
			if len(d.Expire) > 0 {
				var ex []string
				for _, i := range slices.Backward(d.Expire) {
					ex = append([]string{sc.names[i]}, ex...)
					sc.names = slices.Delete(sc.names, i, i+1)
					sc.s.Queue = slices.Delete(sc.s.Queue, i, i+1)
				}
				parts = append(parts, fmt.Sprintf("expire %v", ex))
			}
			if d.Batch > 0 {
				rows := 0
				for _, it := range sc.s.Queue[:d.Batch] {
					rows += it.Rows
				}
				names := slices.Clone(sc.names[:d.Batch])
				end := now.Add(sc.s.Latency.Estimate(rows))
				sc.names = slices.Delete(sc.names, 0, d.Batch)
				sc.s.Queue = slices.Delete(sc.s.Queue, 0, d.Batch)
				sc.batches = append(sc.batches, names)
				sc.s.Running = append(sc.s.Running, end)
				parts = append(parts, fmt.Sprintf("run %v (%d rows) until %v", names, rows, end.Sub(t0)))
			}
			if !d.Wake.IsZero() {
				parts = append(parts, fmt.Sprintf("wake at %v", d.Wake.Sub(t0)))
			}
			if len(parts) == 0 {
				parts = append(parts, fmt.Sprintf("wait; queue %v, running %d", sc.names, len(sc.s.Running)))
			}
			res = append(res, strings.Join(parts, "; "))
			if d.Batch == 0 {
				return res, nil
			}
		}
	case "arriving":
		if len(f) != 2 {
			return nil, fmt.Errorf("want: arriving N")
		}
		n, err := strconv.Atoi(f[1])
		sc.s.Arriving = n
		return nil, err
	case "finish":
		if len(sc.batches) == 0 {
			return nil, fmt.Errorf("nothing running")
		}
		done := sc.batches[0]
		sc.batches, sc.s.Running = sc.batches[1:], sc.s.Running[1:]
		return []string{fmt.Sprintf("finished %v", done)}, nil
	}
	return nil, fmt.Errorf("unknown command %q", f[0])
}
