package control

import (
	"slices"
	"time"
)

// readyTimesKept is how many recent start-to-ready times are kept per
// revision; their median is the revision's time to ready.
const readyTimesKept = 5

// noteReady records the start-to-ready time of each replica of the
// deployment seen ready for the first time: only replicas this control
// plane started and that were never restarted, whose Started time is that
// of the start that became ready. It reports whether it recorded any; the
// caller then saves the memo (the times are kept per revision in it).
func (c *Controller) noteReady(name string, st *deployState, reps []Replica, now time.Time) (changed bool) {
	if st.readySeen == nil {
		st.readySeen = map[string]bool{}
	}
	present := map[string]bool{}
	for _, r := range reps {
		present[r.ID] = true
		if !r.Ready || st.readySeen[r.ID] {
			continue
		}
		st.readySeen[r.ID] = true
		if r.Adopted || r.Restarts > 0 || r.Started.IsZero() || now.Before(r.Started) {
			continue
		}
		if st.readyTimes == nil {
			st.readyTimes = map[string][]time.Duration{}
		}
		ts := append(st.readyTimes[r.Revision], now.Sub(r.Started))
		st.readyTimes[r.Revision] = ts[max(0, len(ts)-readyTimesKept):]
		st.lastReady = r.Revision
		changed = true
	}
	for id := range st.readySeen {
		if !present[id] {
			delete(st.readySeen, id)
		}
	}
	return changed
}

// timeToReady returns the median of the revision's recent start-to-ready
// times; for a revision never measured, that of the revision measured
// last (a new revision of the same deployment starts alike); zero when
// none was ever measured.
func (st *deployState) timeToReady(rev string) time.Duration {
	ts := st.readyTimes[rev]
	if len(ts) == 0 {
		ts = st.readyTimes[st.lastReady]
	}
	if len(ts) == 0 {
		return 0
	}
	s := slices.Clone(ts)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}
