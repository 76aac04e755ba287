package balance

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func replicas(limit int64, inflight ...int64) []*Replica {
	rs := make([]*Replica, len(inflight))
	for i, n := range inflight {
		rs[i] = NewReplica(fmt.Sprintf("r%d", i), limit)
		rs[i].inflight.Store(n)
	}
	return rs
}

func TestPolicies(t *testing.T) {
	for _, tc := range []struct {
		name     string
		policy   Policy
		limit    int64
		inflight []int64
		rnd      uint64
		want     string // "" for none
	}{
		{"p2c empty", P2C, 0, nil, 0, ""},
		{"p2c single", P2C, 0, []int64{7}, 3, "r0"},
		{"p2c single full", P2C, 7, []int64{7}, 3, ""},
		// rnd=0 picks r0 and r1; r1 has fewer in flight.
		{"p2c less loaded of two", P2C, 0, []int64{5, 2, 0}, 0, "r1"},
		// r0 and r1 at the limit: falls back to the least loaded, r2.
		{"p2c both full", P2C, 5, []int64{5, 5, 1}, 0, "r2"},
		{"p2c all full", P2C, 5, []int64{5, 5, 5}, 0, ""},
		{"least request", LeastRequest, 0, []int64{3, 1, 2}, 0, "r1"},
		{"least request skips full", LeastRequest, 1, []int64{1, 1, 0}, 2, "r2"},
		{"round robin first", RoundRobin(), 0, []int64{9, 9}, 0, "r0"},
		{"round robin skips full", RoundRobin(), 2, []int64{2, 0}, 0, "r1"},
		{"hash none", Hash, 0, nil, 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := replicas(tc.limit, tc.inflight...)
			r, release := tc.policy(rs, tc.rnd)
			got := ""
			if r != nil {
				got = r.Addr
				before := r.InFlight()
				release()
				if r.InFlight() != before-1 {
					t.Errorf("release: in flight %d -> %d, want one less", before, r.InFlight())
				}
			}
			if got != tc.want {
				t.Errorf("pick(%v, %d) = %q, want %q", tc.inflight, tc.rnd, got, tc.want)
			}
		})
	}
}

// TestP2CSpreads checks that P2C keeps the load even: with requests held
// open, in-flight counts never differ by more than one... in expectation;
// here after 3000 picks none held by one replica differs from the mean by
// more than a few.
func TestP2CSpreads(t *testing.T) {
	rs := replicas(0, 0, 0, 0, 0, 0)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		P2C(rs, rng.Uint64()) // never released: load accumulates
	}
	for _, r := range rs {
		if d := r.InFlight() - 600; d < -2 || d > 2 {
			t.Errorf("%s holds %d, want 600±2", r.Addr, r.InFlight())
		}
	}
}

func TestRoundRobinTurns(t *testing.T) {
	rs := replicas(0, 0, 0, 0)
	rr := RoundRobin()
	var got []string
	for range 6 {
		r, release := rr(rs, 0)
		got = append(got, r.Addr)
		release()
	}
	if fmt.Sprint(got) != "[r0 r1 r2 r0 r1 r2]" {
		t.Errorf("RoundRobin picks %v, want r0 r1 r2 r0 r1 r2", got)
	}
}

func TestHashSticky(t *testing.T) {
	rs := replicas(0, 0, 0, 0, 0)
	moved := 0
	for k := range 1000 {
		key := StringKey(fmt.Sprint("user-", k))
		a, ra := Hash(rs, key)
		ra()
		b, rb := Hash(rs, key)
		rb()
		if a != b {
			t.Fatalf("key %d: %s then %s", k, a.Addr, b.Addr)
		}
		// Removing another replica must not move the key.
		others := make([]*Replica, 0, 4)
		for _, r := range rs {
			if r != a && len(others) < 3 {
				others = append(others, r)
			}
		}
		others = append(others, a)
		c, rc := Hash(others, key)
		rc()
		if c != a {
			moved++
		}
	}
	if moved != 0 {
		t.Errorf("%d of 1000 keys moved when an unrelated replica left", moved)
	}
}

func BenchmarkP2C(b *testing.B) {
	rs := replicas(0, 0, 0, 0, 0, 0, 0, 0, 0)
	b.ReportAllocs()
	var x uint64 = 1
	for b.Loop() {
		x = mix(x)
		_, release := P2C(rs, x)
		release()
	}
}

func BenchmarkLeastRequest(b *testing.B) {
	rs := replicas(0, 0, 0, 0, 0, 0, 0, 0, 0)
	b.ReportAllocs()
	var x uint64 = 1
	for b.Loop() {
		x = mix(x)
		_, release := LeastRequest(rs, x)
		release()
	}
}

func BenchmarkRoundRobin(b *testing.B) {
	rs := replicas(0, 0, 0, 0, 0, 0, 0, 0, 0)
	rr := RoundRobin()
	b.ReportAllocs()
	for b.Loop() {
		_, release := rr(rs, 0)
		release()
	}
}

func BenchmarkHash(b *testing.B) {
	rs := replicas(0, 0, 0, 0, 0, 0, 0, 0, 0)
	b.ReportAllocs()
	var x uint64 = 1
	for b.Loop() {
		x = mix(x)
		_, release := Hash(rs, x)
		release()
	}
}
