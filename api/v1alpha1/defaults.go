package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Default fills every unset field of d with its documented default. It is
// idempotent.
func (d *ModelDeployment) Default() {
	if d.APIVersion == "" {
		d.APIVersion = APIVersion
	}
	if d.Kind == "" {
		d.Kind = KindModelDeployment
	}
	s := &d.Spec
	if s.Backend == "" {
		s.Backend = "process"
	}
	sc := &s.Scaling
	if sc.MinReplicas == nil {
		one := int32(1)
		sc.MinReplicas = &one
	}
	if sc.MaxReplicas == 0 {
		sc.MaxReplicas = max(*sc.MinReplicas, 4)
	}
	if sc.Metric == "" {
		sc.Metric = "concurrency"
	}
	if sc.Target == 0 {
		sc.Target = 8
		if sc.Metric == "rps" {
			sc.Target = 100
		}
	}
	defaultDuration(&sc.ScaleToZeroGracePeriod, 30*time.Second)
	defaultDuration(&sc.StableWindow, 60*time.Second)
	defaultDuration(&sc.PanicWindow, 6*time.Second)
	if sc.PanicThreshold == 0 {
		sc.PanicThreshold = 2
	}
	if sc.MaxScaleUpRate == 0 {
		sc.MaxScaleUpRate = 1000
	}
	if sc.MaxScaleDownRate == 0 {
		sc.MaxScaleDownRate = 2
	}
	r := &s.Rollout
	if r.Strategy == "" {
		r.Strategy = "rolling"
	}
	if r.MaxSurge == "" {
		r.MaxSurge = "25%"
	}
	if r.MaxUnavailable == "" {
		r.MaxUnavailable = "0"
	}
	if r.Strategy == "canary" && len(r.Steps) == 0 {
		r.Steps = []CanaryStep{{Weight: 10, Pause: Duration{30 * time.Second}}, {Weight: 50, Pause: Duration{30 * time.Second}}}
	}
	if r.Analysis.MaxErrorRate == 0 {
		r.Analysis.MaxErrorRate = 0.05
	}
	if r.Analysis.MaxLatencyRatio == 0 {
		r.Analysis.MaxLatencyRatio = 1.5
	}
	if r.Analysis.LatencySlack == nil {
		r.Analysis.LatencySlack = &Duration{10 * time.Millisecond}
	}
	defaultDuration(&r.ProgressDeadline, 120*time.Second)
	if r.Analysis.MinRequests == 0 {
		r.Analysis.MinRequests = 50
	}
}

func defaultDuration(d *Duration, v time.Duration) {
	if d.Duration == 0 {
		d.Duration = v
	}
}

// RevisionHash returns a short hash of the parts of the spec that define a
// revision (model, runtime, backend, resources): two specs with the same
// hash run the same replicas. Scaling, rollout and traffic are not part of
// it.
func (s *ModelDeploymentSpec) RevisionHash() string {
	b, err := json.Marshal(struct {
		Model     ModelSource
		Runtime   Runtime
		Backend   string
		Resources Resources
	}{s.Model, s.Runtime, s.Backend, s.Resources})
	if err != nil {
		panic("v1alpha1: revision hash: " + err.Error()) // only plain data types: cannot fail
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:5])
}
