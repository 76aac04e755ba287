package batch

import (
	"testing"
	"time"
)

func TestLatency(t *testing.T) {
	type obs struct {
		rows int
		took time.Duration
	}
	for _, tc := range []struct {
		name string
		obs  []obs
		rows int
		want time.Duration
	}{
		{"nothing", nil, 8, 0},
		{"one size", []obs{{4, time.Millisecond}}, 64, time.Millisecond},
		{"linear", []obs{{1, 2 * time.Millisecond}, {11, 7 * time.Millisecond}}, 21, 12 * time.Millisecond},
		{"flat", []obs{{1, time.Millisecond}, {8, time.Millisecond}, {64, time.Millisecond}}, 32, time.Millisecond},
		{"no negative slope", []obs{{1, 3 * time.Millisecond}, {9, time.Millisecond}}, 100, 2 * time.Millisecond},
	} {
		var l Latency
		for _, o := range tc.obs {
			l.Observe(o.rows, o.took)
		}
		got := l.Estimate(tc.rows)
		// Older observations weigh a little less, so allow 1%.
		if d := got - tc.want; d < -tc.want/100 || d > tc.want/100 {
			t.Errorf("%s: Estimate(%d) = %v, want %v", tc.name, tc.rows, got, tc.want)
		}
	}
}
