package v1alpha1

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// ErrInvalid is wrapped by Validate's error.
var ErrInvalid = errors.New("v1alpha1: invalid object")

// nameRE is a Kubernetes DNS-1123 label: the same names work everywhere.
var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// Validate checks a defaulted ModelDeployment and returns an error naming
// every invalid field, wrapping ErrInvalid; nil if it is valid.
func (d *ModelDeployment) Validate() error {
	var errs []string
	bad := func(field, format string, args ...any) {
		errs = append(errs, field+": "+fmt.Sprintf(format, args...))
	}
	if d.APIVersion != APIVersion {
		bad("apiVersion", "must be %q, got %q", APIVersion, d.APIVersion)
	}
	if d.Kind != KindModelDeployment {
		bad("kind", "must be %q, got %q", KindModelDeployment, d.Kind)
	}
	if !nameRE.MatchString(d.Metadata.Name) {
		bad("metadata.name", "%q must be lower-case letters, digits and '-', 1-63 characters, starting and ending with a letter or digit", d.Metadata.Name)
	}
	s := &d.Spec
	switch {
	case s.Model.URI == "":
		bad("spec.model.uri", "required (a model repository directory, a model file, or oci://...)")
	case strings.Contains(s.Model.URI, "://") && !strings.HasPrefix(s.Model.URI, "oci://"):
		bad("spec.model.uri", "%q: only paths and oci:// references are supported", s.Model.URI)
	}
	switch s.Model.Format {
	case "", "xgboost", "lightgbm", "onnx", "python", "http":
	default:
		bad("spec.model.format", "unknown format %q (xgboost, lightgbm, onnx, python, http)", s.Model.Format)
	}
	switch s.Backend {
	case "process", "docker", "kubernetes":
	default:
		bad("spec.backend", "must be process, docker or kubernetes, got %q", s.Backend)
	}
	sc := &s.Scaling
	if sc.MinReplicas == nil || *sc.MinReplicas < 0 {
		bad("spec.scaling.minReplicas", "must be 0 or more")
	} else if sc.MaxReplicas < max(*sc.MinReplicas, 1) {
		bad("spec.scaling.maxReplicas", "must be at least minReplicas and at least 1, got %d", sc.MaxReplicas)
	}
	if sc.Metric != "concurrency" && sc.Metric != "rps" {
		bad("spec.scaling.metric", "must be concurrency or rps, got %q", sc.Metric)
	}
	if sc.Target <= 0 {
		bad("spec.scaling.target", "must be positive, got %v", sc.Target)
	}
	for field, v := range map[string]Duration{
		"spec.scaling.scaleToZeroGracePeriod": sc.ScaleToZeroGracePeriod,
		"spec.scaling.stableWindow":           sc.StableWindow,
		"spec.scaling.panicWindow":            sc.PanicWindow,
	} {
		if v.Duration <= 0 {
			bad(field, "must be positive, got %v", v.Duration)
		}
	}
	if sc.PanicWindow.Duration > sc.StableWindow.Duration {
		bad("spec.scaling.panicWindow", "must not exceed stableWindow (%v > %v)", sc.PanicWindow.Duration, sc.StableWindow.Duration)
	}
	if sc.PanicThreshold <= 1 {
		bad("spec.scaling.panicThreshold", "must be above 1 (2 means 200%% of target), got %v", sc.PanicThreshold)
	}
	if sc.MaxScaleUpRate <= 1 {
		bad("spec.scaling.maxScaleUpRate", "must be above 1, got %v", sc.MaxScaleUpRate)
	}
	if sc.MaxScaleDownRate <= 1 {
		bad("spec.scaling.maxScaleDownRate", "must be above 1, got %v", sc.MaxScaleDownRate)
	}
	r := &s.Rollout
	switch r.Strategy {
	case "rolling", "canary":
	default:
		bad("spec.rollout.strategy", "must be rolling or canary, got %q", r.Strategy)
	}
	surge, err1 := ParseIntOrPercent(r.MaxSurge, 100)
	if err1 != nil {
		bad("spec.rollout.maxSurge", "%v", err1)
	}
	unavail, err2 := ParseIntOrPercent(r.MaxUnavailable, 100)
	if err2 != nil {
		bad("spec.rollout.maxUnavailable", "%v", err2)
	}
	if err1 == nil && err2 == nil && surge == 0 && unavail == 0 {
		bad("spec.rollout", "maxSurge and maxUnavailable cannot both be 0: the rollout could never make progress")
	}
	last := int32(0)
	for i, st := range r.Steps {
		f := fmt.Sprintf("spec.rollout.steps[%d]", i)
		if st.Weight <= last || st.Weight > 100 {
			bad(f+".weight", "must increase step by step within 1..100, got %d after %d", st.Weight, last)
		}
		if st.Pause.Duration < 0 {
			bad(f+".pause", "must not be negative")
		}
		last = st.Weight
	}
	a := r.Analysis
	if a.MaxErrorRate < 0 || a.MaxErrorRate > 1 {
		bad("spec.rollout.analysis.maxErrorRate", "must be within 0..1, got %v", a.MaxErrorRate)
	}
	if a.MaxLatencyRatio < 1 {
		bad("spec.rollout.analysis.maxLatencyRatio", "must be at least 1, got %v", a.MaxLatencyRatio)
	}
	if a.LatencySlack != nil && a.LatencySlack.Duration < 0 {
		bad("spec.rollout.analysis.latencySlack", "must not be negative, got %v", a.LatencySlack.Duration)
	}
	if r.ProgressDeadline.Duration <= 0 {
		bad("spec.rollout.progressDeadline", "must be positive, got %v", r.ProgressDeadline.Duration)
	}
	if a.MinRequests < 1 {
		bad("spec.rollout.analysis.minRequests", "must be at least 1, got %d", a.MinRequests)
	}
	sum, seen := int32(0), map[string]bool{}
	for i, t := range s.Traffic.Split {
		f := fmt.Sprintf("spec.traffic.split[%d]", i)
		if t.Revision == "" {
			bad(f+".revision", "required")
		}
		if seen[t.Revision] {
			bad(f+".revision", "%q listed twice", t.Revision)
		}
		seen[t.Revision] = true
		if t.Weight < 0 || t.Weight > 100 {
			bad(f+".weight", "must be within 0..100, got %d", t.Weight)
		}
		sum += t.Weight
	}
	if len(s.Traffic.Split) > 0 && sum != 100 {
		bad("spec.traffic.split", "weights must sum to 100, got %d", sum)
	}
	if m := s.Traffic.Mirror; m != nil {
		if m.Revision == "" {
			bad("spec.traffic.mirror.revision", "required")
		}
		if m.Percent <= 0 || m.Percent > 100 {
			bad("spec.traffic.mirror.percent", "must be within (0, 100], got %v", m.Percent)
		}
	}
	if q := s.Resources.CPU; q != "" {
		if _, err := ParseCPU(q); err != nil {
			bad("spec.resources.cpu", "%v", err)
		}
	}
	if q := s.Resources.Memory; q != "" {
		if _, err := ParseBytes(q); err != nil {
			bad("spec.resources.memory", "%v", err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s %q: %s", ErrInvalid, KindModelDeployment, d.Metadata.Name, strings.Join(errs, "; "))
}

// ParseIntOrPercent reads "3" as 3 and "25%" as 25% of total, rounded up.
func ParseIntOrPercent(s string, total int) (int, error) {
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 || v > 100 {
			return 0, fmt.Errorf("%q: want a count or a percentage 0%%..100%%", s)
		}
		return (v*total + 99) / 100, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q: want a count or a percentage", s)
	}
	return v, nil
}

// ParseCPU reads a CPU quantity ("2", "0.5", "500m") in millicores.
func ParseCPU(s string) (int64, error) {
	if m, ok := strings.CutSuffix(s, "m"); ok {
		v, err := strconv.ParseInt(m, 10, 64)
		if err != nil || v <= 0 {
			return 0, fmt.Errorf("%q: want cores (\"2\", \"0.5\") or millicores (\"500m\")", s)
		}
		return v, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 || v > 1e6 {
		return 0, fmt.Errorf("%q: want cores (\"2\", \"0.5\") or millicores (\"500m\")", s)
	}
	return int64(v * 1000), nil
}

// ParseBytes reads a memory quantity ("512Mi", "1Gi", "100M", "1048576").
func ParseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}}
	mult := int64(1)
	num := s
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = n, u.mult
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v <= 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("%q: want bytes with an optional suffix (Ki, Mi, Gi, Ti, k, M, G, T)", s)
	}
	return v * mult, nil
}
