package v1alpha1

import (
	"fmt"
	"slices"
	"strings"
)

// Revision aliases a traffic split or mirror may name instead of a
// revision's full name.
const (
	// RevisionLatest is the revision the spec defines now.
	RevisionLatest = "latest"
	// RevisionPrevious is the revision the spec defined before its last
	// revision change.
	RevisionPrevious = "previous"
)

// ValidateTraffic checks that every revision spec.traffic names (split
// and mirror) is one of known or an alias (latest, previous when known has
// a second entry). known lists the revisions whose replicas the control
// plane can run: the current one first, then the previous one, if any. It
// returns an error wrapping ErrInvalid that names each bad field, or nil.
func (d *ModelDeployment) ValidateTraffic(known []string) error {
	var errs []string
	check := func(field, rev string) {
		switch {
		case rev == RevisionLatest && len(known) > 0, rev == RevisionPrevious && len(known) > 1, slices.Contains(known, rev):
			return
		case rev == RevisionPrevious:
			errs = append(errs, fmt.Sprintf("%s: %q: the deployment has no previous revision", field, rev))
		default:
			errs = append(errs, fmt.Sprintf("%s: %q is not a revision of %s (want latest, previous or one of %s)",
				field, rev, d.Metadata.Name, strings.Join(known, ", ")))
		}
	}
	for i, t := range d.Spec.Traffic.Split {
		check(fmt.Sprintf("spec.traffic.split[%d].revision", i), t.Revision)
	}
	if m := d.Spec.Traffic.Mirror; m != nil {
		check("spec.traffic.mirror.revision", m.Revision)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s %q: %s", ErrInvalid, KindModelDeployment, d.Metadata.Name, strings.Join(errs, "; "))
}
