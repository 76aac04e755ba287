package control

import (
	"sort"

	"github.com/shoal-ml/shoal/api/v1alpha1"
	"github.com/shoal-ml/shoal/internal/gateway"
)

// traffic is a deployment's spec.traffic with its revisions resolved
// (latest, previous) to names.
//
// A split pins the traffic: each revision it weights gets its share of
// the desired replicas (at least one) and of the requests, whatever the
// rollout strategy says (a split replaces a rolling update or a canary).
// A mirror revision gets replicas of its own (its percent of the desired
// count, at least one) and a copy of that percent of the requests, whose
// answers the gateway compares with the primary's and discards.
type traffic struct {
	split     []v1alpha1.TrafficTarget // resolved; nil when not pinned
	mirror    string                   // "" for none
	mirrorPct float64
	current   string
	known     map[string]bool // revisions whose spec is known: current, previous
}

// knownRevisions returns the revisions whose replicas the controller can
// start for d: the current one, then the previous one, if any.
func knownRevisions(d *v1alpha1.ModelDeployment) []string {
	known := []string{RevisionName(d)}
	if _, prev := previousSpec(d); prev != "" && prev != known[0] {
		known = append(known, prev)
	}
	return known
}

// resolveRevision returns the revision name a split or mirror means.
func resolveRevision(name string, known []string) string {
	switch {
	case name == v1alpha1.RevisionLatest:
		return known[0]
	case name == v1alpha1.RevisionPrevious && len(known) > 1:
		return known[1]
	}
	return name
}

func trafficOf(d *v1alpha1.ModelDeployment) traffic {
	known := knownRevisions(d)
	tr := traffic{current: known[0], known: map[string]bool{}}
	for _, k := range known {
		tr.known[k] = true
	}
	for _, t := range d.Spec.Traffic.Split {
		tr.split = append(tr.split, v1alpha1.TrafficTarget{Revision: resolveRevision(t.Revision, known), Weight: t.Weight})
	}
	if m := d.Spec.Traffic.Mirror; m != nil {
		tr.mirror, tr.mirrorPct = resolveRevision(m.Revision, known), m.Percent
	}
	return tr
}

func (tr traffic) pinned() bool { return len(tr.split) > 0 }

// separateMirror reports whether the mirror revision runs replicas of its
// own, apart from the plan of the revisions that take traffic.
func (tr traffic) separateMirror() bool {
	return tr.mirror != "" && !tr.pinned() && tr.mirror != tr.current
}

// serving reports whether replicas of rev are meant to run now (they are
// not an old revision to replace).
func (tr traffic) serving(rev string) bool {
	if !tr.pinned() {
		return rev == tr.current || rev == tr.mirror
	}
	if rev == tr.mirror {
		return true
	}
	for _, t := range tr.split {
		if t.Revision == rev && t.Weight > 0 {
			return true
		}
	}
	return false
}

// others returns the replicas the rollout plan governs: all but those of
// a separate mirror revision.
func (tr traffic) others(reps []Replica) []Replica {
	if !tr.separateMirror() {
		return reps
	}
	var out []Replica
	for _, r := range reps {
		if r.Revision != tr.mirror {
			out = append(out, r)
		}
	}
	return out
}

// share returns pct percent of desired replicas, rounded up, at least one.
func share(desired int, pct float64) int {
	n := int((float64(desired)*pct + 99.999) / 100)
	return max(n, 1)
}

// targets returns how many replicas each pinned revision should have.
func (tr traffic) targets(desired int) map[string]int {
	out := map[string]int{}
	for _, t := range tr.split {
		if t.Weight > 0 && desired > 0 {
			out[t.Revision] = share(desired, float64(t.Weight))
		}
	}
	if tr.mirror != "" && desired > 0 {
		out[tr.mirror] = max(out[tr.mirror], share(desired, tr.mirrorPct))
	}
	return out
}

// pinnedPlan starts and stops replicas so that each revision has its
// target count: the not-ready replicas stop first, then the newest.
// Revisions the controller cannot start (their spec is no longer known)
// keep the replicas they have, up to their target.
func (tr traffic) pinnedPlan(want map[string]int, reps []Replica) []Action {
	byRev := map[string][]Replica{}
	for _, r := range reps {
		byRev[r.Revision] = append(byRev[r.Revision], r)
	}
	revs := make([]string, 0, len(byRev)+len(want))
	for rev := range byRev {
		revs = append(revs, rev)
	}
	for rev := range want {
		if _, ok := byRev[rev]; !ok {
			revs = append(revs, rev)
		}
	}
	sort.Strings(revs)
	var acts []Action
	for _, rev := range revs {
		acts = append(acts, keepPlan(rev, want[rev], byRev[rev], tr.known[rev])...)
	}
	return acts
}

// keepPlan brings rev's replicas to n: starts the missing ones (when
// canStart) or stops the extra ones, not-ready and newest first.
func keepPlan(rev string, n int, reps []Replica, canStart bool) []Action {
	var acts []Action
	for i := len(reps); i < n && canStart; i++ {
		acts = append(acts, Action{Kind: Start, Revision: rev})
	}
	if len(reps) <= n {
		return acts
	}
	rs := append([]Replica(nil), reps...)
	sort.SliceStable(rs, func(i, j int) bool {
		if rs[i].Ready != rs[j].Ready {
			return !rs[i].Ready
		}
		return rs[i].ID > rs[j].ID
	})
	for _, r := range rs[:len(rs)-n] {
		acts = append(acts, Action{Kind: Stop, Revision: rev, Replica: r.ID})
	}
	return acts
}

// mirrorPlan keeps a separate mirror revision at its share of desired.
func (tr traffic) mirrorPlan(reps []Replica, desired int) []Action {
	if !tr.separateMirror() {
		return nil
	}
	n := 0
	if desired > 0 {
		n = share(desired, tr.mirrorPct)
	}
	return keepPlan(tr.mirror, n, filterRev(reps, tr.mirror), tr.known[tr.mirror])
}

// pinnedRoutes weights the split's revisions that have ready replicas as
// the split says (the gateway's weights are relative: a revision not ready
// yet leaves its share to the others).
func (tr traffic) pinnedRoutes(reps []Replica) (gateway.Model, map[string]int32) {
	m, _ := routes(reps)
	weight := map[string]int{}
	for _, t := range tr.split {
		weight[t.Revision] = int(t.Weight)
	}
	total := 0
	for i := range m.Revisions {
		m.Revisions[i].Weight = weight[m.Revisions[i].Name]
		total += m.Revisions[i].Weight
	}
	pct := map[string]int32{}
	for _, r := range m.Revisions {
		if total > 0 {
			pct[r.Name] = int32(100 * r.Weight / total)
		}
	}
	return m, pct
}

// addMirror adds the mirror to the route once its revision has a ready
// replica (the gateway needs the revision in the route, with weight zero
// when it takes no traffic of its own).
func (tr traffic) addMirror(m *gateway.Model, pct map[string]int32, reps []Replica) {
	if tr.mirror == "" {
		return
	}
	found := false
	for _, r := range m.Revisions {
		found = found || r.Name == tr.mirror
	}
	if !found {
		var rs []gateway.Replica
		for _, r := range reps {
			if r.Revision == tr.mirror && r.Ready {
				rs = append(rs, gateway.Replica{HTTP: r.HTTP, GRPC: r.GRPC})
			}
		}
		if len(rs) == 0 {
			return
		}
		m.Revisions = append(m.Revisions, gateway.Revision{Name: tr.mirror, Replicas: rs})
		pct[tr.mirror] = 0
	}
	m.Mirror = &gateway.Mirror{Revision: tr.mirror, Percent: tr.mirrorPct}
}
