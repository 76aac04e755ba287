package gateway

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// fakeAttempt is how one replica of TestHedgeEngine answers: after a
// while, well or badly, unless its attempt is cancelled first.
type fakeAttempt struct {
	after time.Duration
	good  bool
}

// fakeReplica counts what the engine did with one target.
type fakeReplica struct {
	fakeAttempt
	sends, cancelled, ended, failed atomic.Int32
}

type fakeAnswer struct {
	from int // index of the replica, -1 for none (a cancelled attempt)
	good bool
}

// TestHedgeEngine runs hedge.run with replicas that answer on a fake
// clock: who wins, that the loser is cancelled, that every target is
// ended and every answer but the winner's discarded exactly once, and
// that no goroutine is left behind (synctest.Test fails if one is
// blocked when the test ends; synctest.Wait lets the engine's cleanup
// finish without moving the clock, so a loser that was not cancelled
// is still waiting and counted as not ended).
func TestHedgeEngine(t *testing.T) {
	const delay = 10 * time.Millisecond
	const never = time.Hour // a slow replica's answer, unless cancelled
	tests := []struct {
		name   string
		first  fakeAttempt
		second *fakeAttempt // nil: no replica free for a copy
		budget bool         // whether the retry budget pays for a copy
		cancel time.Duration

		wantFrom      int  // the replica whose answer run returns, -1 for either
		wantGood      bool // whether that answer is good
		wantSecond    bool // whether a copy was sent
		wantCancelled [2]bool
		wantFailed    [2]bool
		wantErr       error // of the returned attempt
	}{
		{name: "first answers before the delay",
			first: fakeAttempt{after: delay / 2, good: true}, second: &fakeAttempt{after: 0, good: true}, budget: true,
			wantFrom: 0, wantGood: true},
		{name: "copy wins, first cancelled",
			first: fakeAttempt{after: never, good: true}, second: &fakeAttempt{after: 0, good: true}, budget: true,
			wantFrom: 1, wantGood: true, wantSecond: true, wantCancelled: [2]bool{true, false}},
		{name: "first wins after the copy, copy cancelled",
			first: fakeAttempt{after: delay + 1, good: true}, second: &fakeAttempt{after: never, good: true}, budget: true,
			wantFrom: 0, wantGood: true, wantSecond: true, wantCancelled: [2]bool{false, true}},
		{name: "bad copy dropped, first wins",
			first: fakeAttempt{after: 2 * delay, good: true}, second: &fakeAttempt{after: 0, good: false}, budget: true,
			wantFrom: 0, wantGood: true, wantSecond: true, wantFailed: [2]bool{false, true}},
		{name: "bad first dropped, copy wins",
			first: fakeAttempt{after: delay + 1, good: false}, second: &fakeAttempt{after: 2 * delay, good: true}, budget: true,
			wantFrom: 1, wantGood: true, wantSecond: true, wantFailed: [2]bool{true, false}},
		{name: "both bad: the last one",
			first: fakeAttempt{after: 3 * delay, good: false}, second: &fakeAttempt{after: 0, good: false}, budget: true,
			wantFrom: 0, wantGood: false, wantSecond: true, wantFailed: [2]bool{false, true}},
		{name: "budget refuses: no copy",
			first: fakeAttempt{after: 5 * delay, good: true}, second: &fakeAttempt{after: 0, good: true}, budget: false,
			wantFrom: 0, wantGood: true},
		{name: "bad first without a copy is the answer",
			first: fakeAttempt{after: 5 * delay, good: false}, second: &fakeAttempt{after: 0, good: true}, budget: false,
			wantFrom: 0, wantGood: false},
		{name: "no free replica: no copy",
			first: fakeAttempt{after: 5 * delay, good: true}, budget: true,
			wantFrom: 0, wantGood: true},
		{name: "the request is cancelled: both attempts end",
			first: fakeAttempt{after: never, good: true}, second: &fakeAttempt{after: never, good: true}, budget: true, cancel: 2 * delay,
			wantFrom: -1, wantSecond: true, wantCancelled: [2]bool{true, true}, wantErr: context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				reps := [2]*fakeReplica{{fakeAttempt: tc.first}}
				if tc.second != nil {
					reps[1] = &fakeReplica{fakeAttempt: *tc.second}
				}
				var mu sync.Mutex // pick adds a target while the first send reads
				byTarget := map[*target]int{}
				newTarget := func(i int) *target {
					tg := &target{rev: &revision{}, release: func() { reps[i].ended.Add(1) }}
					mu.Lock()
					byTarget[tg] = i
					mu.Unlock()
					return tg
				}
				index := func(tg *target) int {
					mu.Lock()
					defer mu.Unlock()
					return byTarget[tg]
				}
				b := newBudget(0, 0) // no refill: spent is spent
				if !tc.budget {
					for b.retry(time.Now()) {
					}
				}
				var picks, discarded atomic.Int32
				h := hedge[fakeAnswer]{
					send: func(ctx context.Context, tg *target) (fakeAnswer, error) {
						r := reps[index(tg)]
						r.sends.Add(1)
						select {
						case <-ctx.Done():
							r.cancelled.Add(1)
							return fakeAnswer{from: -1}, ctx.Err()
						case <-time.After(r.after):
							return fakeAnswer{from: index(tg), good: r.good}, nil
						}
					},
					good:    func(a fakeAnswer, err error) bool { return err == nil && a.good },
					discard: func(fakeAnswer) { discarded.Add(1) },
					allow:   func() bool { return b.retry(time.Now()) },
					pick: func() *target {
						picks.Add(1)
						if reps[1] == nil {
							return nil
						}
						return newTarget(1)
					},
					failed: func(tg *target) { reps[index(tg)].failed.Add(1) },
				}
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				if tc.cancel > 0 {
					time.AfterFunc(tc.cancel, cancel)
				}
				a := h.run(ctx, newTarget(0), delay)
				synctest.Wait() // the loser's cleanup, if any, is done
				if tc.wantFrom == -1 {
					// Both attempts end together: the one that reports
					// first is the failure, the other the answer.
					tc.wantFrom = index(a.t)
					tc.wantFailed[1-tc.wantFrom] = true
				}

				if got := index(a.t); got != tc.wantFrom {
					t.Errorf("run returned replica %d's attempt, want %d's", got, tc.wantFrom)
				}
				if tc.wantErr == nil && (a.resp.from != tc.wantFrom || a.resp.good != tc.wantGood || a.err != nil) {
					t.Errorf("run = %+v, %v; want replica %d's answer, good %v", a.resp, a.err, tc.wantFrom, tc.wantGood)
				}
				if !errors.Is(a.err, tc.wantErr) {
					t.Errorf("run error = %v, want %v", a.err, tc.wantErr)
				}
				if a.idx != index(a.t) {
					t.Errorf("attempt index %d for replica %d", a.idx, index(a.t))
				}
				if n := picks.Load(); (n > 0) != (tc.budget && (tc.first.after > delay)) {
					t.Errorf("pick called %d times; budget %v, first answer after %v", n, tc.budget, tc.first.after)
				}
				sent := 1
				if tc.wantSecond {
					sent = 2
				}
				if n := int(reps[0].sends.Load()); n != 1 {
					t.Errorf("first replica got %d sends, want 1", n)
				}
				if reps[1] != nil && int(reps[1].sends.Load()) != sent-1 {
					t.Errorf("second replica got %d sends, want %d", reps[1].sends.Load(), sent-1)
				}
				// Everything but the returned attempt is released by run.
				if n := discarded.Load(); int(n) != sent-1 {
					t.Errorf("%d answers discarded, want %d", n, sent-1)
				}
				for i, r := range reps[:sent] {
					wantEnded := int32(1)
					if i == tc.wantFrom {
						wantEnded = 0 // the caller's
					}
					if n := r.ended.Load(); n != wantEnded {
						t.Errorf("replica %d's target ended %d times before the caller ends the winner's, want %d", i, n, wantEnded)
					}
					if got := r.cancelled.Load() == 1; got != tc.wantCancelled[i] {
						t.Errorf("replica %d's attempt cancelled: %v, want %v", i, got, tc.wantCancelled[i])
					}
					if got := r.failed.Load() == 1; got != tc.wantFailed[i] {
						t.Errorf("replica %d's failure recorded: %v, want %v", i, got, tc.wantFailed[i])
					}
				}
				a.cancel()
				a.t.done()
				if n := reps[tc.wantFrom].ended.Load(); n != 1 {
					t.Errorf("winner's target ended %d times, want 1", n)
				}
			})
		})
	}
}
