package v1alpha1

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

const sample = `apiVersion: shoal.dev/v1alpha1
kind: ModelDeployment
metadata:
  name: iris
spec:
  model:
    uri: ./models/iris
  scaling:
    minReplicas: 0
    maxReplicas: 5
    scaleToZeroGracePeriod: 45s
  rollout:
    strategy: canary
    steps:
    - {weight: 20, pause: 10s}
    - {weight: 60, pause: 1m}
---
apiVersion: shoal.dev/v1alpha1
kind: ModelDeployment
metadata:
  name: other
spec:
  model: {uri: model.json, format: xgboost}
`

func TestDecodeDefaultValidate(t *testing.T) {
	ds, err := Decode([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 || ds[0].Metadata.Name != "iris" || ds[1].Metadata.Name != "other" {
		t.Fatalf("Decode = %+v", ds)
	}
	d := ds[0]
	d.Default()
	if err := d.Validate(); err != nil {
		t.Fatalf("Validate = %v", err)
	}
	sc := d.Spec.Scaling
	if *sc.MinReplicas != 0 || sc.MaxReplicas != 5 || sc.ScaleToZeroGracePeriod.Duration != 45*time.Second ||
		sc.StableWindow.Duration != time.Minute || sc.PanicWindow.Duration != 6*time.Second || sc.PanicThreshold != 2 || sc.Target != 8 {
		t.Errorf("defaulted scaling = %+v", sc)
	}
	if got := d.Spec.Rollout.Steps[1].Pause.Duration; got != time.Minute {
		t.Errorf("step pause = %v", got)
	}
	o := ds[1]
	o.Default()
	if *o.Spec.Scaling.MinReplicas != 1 || o.Spec.Scaling.MaxReplicas != 4 || o.Spec.Rollout.Strategy != "rolling" || o.Spec.Backend != "process" {
		t.Errorf("defaults = %+v", o.Spec)
	}
	if r := o.Spec.Rollout; r.Analysis.LatencySlack == nil || r.Analysis.LatencySlack.Duration != 10*time.Millisecond || r.ProgressDeadline.Duration != 2*time.Minute {
		t.Errorf("defaulted rollout = %+v, want latencySlack 10ms and progressDeadline 2m", r)
	}
	// Default is idempotent.
	before, _ := json.Marshal(o)
	o.Default()
	if after, _ := json.Marshal(o); string(after) != string(before) {
		t.Errorf("Default not idempotent:\n%s\n%s", before, after)
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := map[string]string{
		"unknown field": "apiVersion: shoal.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: a}\nspec: {model: {uri: x}, replicas: 3}\n",
		"unknown kind":  "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n",
		"bad duration":  "apiVersion: shoal.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: a}\nspec: {model: {uri: x}, scaling: {stableWindow: 10}}\n",
		"not yaml":      "kind: [",
	}
	for name, doc := range cases {
		if _, err := Decode([]byte(doc)); err == nil {
			t.Errorf("%s: Decode succeeded", name)
		}
	}
}

func valid() ModelDeployment {
	d := ModelDeployment{Metadata: ObjectMeta{Name: "m"}, Spec: ModelDeploymentSpec{Model: ModelSource{URI: "m.json"}}}
	d.Default()
	return d
}

func TestValidate(t *testing.T) {
	i32 := func(v int32) *int32 { return &v }
	cases := []struct {
		name  string
		edit  func(*ModelDeployment)
		field string
	}{
		{"bad name", func(d *ModelDeployment) { d.Metadata.Name = "Iris_1" }, "metadata.name"},
		{"no uri", func(d *ModelDeployment) { d.Spec.Model.URI = "" }, "spec.model.uri"},
		{"http uri", func(d *ModelDeployment) { d.Spec.Model.URI = "https://x/m.json" }, "spec.model.uri"},
		{"bad format", func(d *ModelDeployment) { d.Spec.Model.Format = "tensorflow" }, "spec.model.format"},
		{"bad backend", func(d *ModelDeployment) { d.Spec.Backend = "nomad" }, "spec.backend"},
		{"negative min", func(d *ModelDeployment) { d.Spec.Scaling.MinReplicas = i32(-1) }, "spec.scaling.minReplicas"},
		{"max below min", func(d *ModelDeployment) { d.Spec.Scaling.MinReplicas = i32(5); d.Spec.Scaling.MaxReplicas = 2 }, "spec.scaling.maxReplicas"},
		{"bad metric", func(d *ModelDeployment) { d.Spec.Scaling.Metric = "cpu" }, "spec.scaling.metric"},
		{"panic window > stable", func(d *ModelDeployment) { d.Spec.Scaling.PanicWindow.Duration = 2 * time.Minute }, "spec.scaling.panicWindow"},
		{"panic threshold", func(d *ModelDeployment) { d.Spec.Scaling.PanicThreshold = 0.5 }, "spec.scaling.panicThreshold"},
		{"bad strategy", func(d *ModelDeployment) { d.Spec.Rollout.Strategy = "bluegreen" }, "spec.rollout.strategy"},
		{"bad surge", func(d *ModelDeployment) { d.Spec.Rollout.MaxSurge = "lots" }, "spec.rollout.maxSurge"},
		{"no progress", func(d *ModelDeployment) { d.Spec.Rollout.MaxSurge = "0"; d.Spec.Rollout.MaxUnavailable = "0%" }, "spec.rollout:"},
		{"steps not increasing", func(d *ModelDeployment) {
			d.Spec.Rollout.Steps = []CanaryStep{{Weight: 50}, {Weight: 20}}
		}, "spec.rollout.steps[1].weight"},
		{"error rate", func(d *ModelDeployment) { d.Spec.Rollout.Analysis.MaxErrorRate = 2 }, "spec.rollout.analysis.maxErrorRate"},
		{"latency slack", func(d *ModelDeployment) { d.Spec.Rollout.Analysis.LatencySlack = &Duration{-time.Millisecond} }, "spec.rollout.analysis.latencySlack"},
		{"progress deadline", func(d *ModelDeployment) { d.Spec.Rollout.ProgressDeadline.Duration = -time.Second }, "spec.rollout.progressDeadline"},
		{"split sum", func(d *ModelDeployment) {
			d.Spec.Traffic.Split = []TrafficTarget{{Revision: "a", Weight: 50}, {Revision: "b", Weight: 40}}
		}, "spec.traffic.split:"},
		{"split dup", func(d *ModelDeployment) {
			d.Spec.Traffic.Split = []TrafficTarget{{Revision: "a", Weight: 50}, {Revision: "a", Weight: 50}}
		}, "spec.traffic.split[1].revision"},
		{"mirror percent", func(d *ModelDeployment) { d.Spec.Traffic.Mirror = &Mirror{Revision: "a", Percent: 0} }, "spec.traffic.mirror.percent"},
		{"cpu", func(d *ModelDeployment) { d.Spec.Resources.CPU = "two" }, "spec.resources.cpu"},
		{"memory", func(d *ModelDeployment) { d.Spec.Resources.Memory = "1Gb" }, "spec.resources.memory"},
		{"kind", func(d *ModelDeployment) { d.Kind = "Deployment" }, "kind"},
	}
	for _, c := range cases {
		d := valid()
		c.edit(&d)
		err := d.Validate()
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: Validate() = %v, want an error naming %s", c.name, err, c.field)
		}
	}
	d := valid()
	if err := d.Validate(); err != nil {
		t.Errorf("valid object: %v", err)
	}
}

func TestRevisionHash(t *testing.T) {
	a, b := valid(), valid()
	if a.Spec.RevisionHash() != b.Spec.RevisionHash() {
		t.Fatal("equal specs hash differently")
	}
	b.Spec.Scaling.MaxReplicas = 9
	b.Spec.Traffic.Mirror = &Mirror{Revision: "x", Percent: 5}
	if a.Spec.RevisionHash() != b.Spec.RevisionHash() {
		t.Error("scaling or traffic changed the revision hash")
	}
	b.Spec.Model.URI = "other.json"
	if a.Spec.RevisionHash() == b.Spec.RevisionHash() {
		t.Error("a model change kept the revision hash")
	}
	c := valid()
	c.Spec.Runtime.Env = map[string]string{"A": "1"}
	if a.Spec.RevisionHash() == c.Spec.RevisionHash() {
		t.Error("a runtime change kept the revision hash")
	}
}

func TestQuantities(t *testing.T) {
	for in, want := range map[string]int64{"2": 2000, "0.5": 500, "250m": 250} {
		if got, err := ParseCPU(in); err != nil || got != want {
			t.Errorf("ParseCPU(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for in, want := range map[string]int64{"512Mi": 512 << 20, "1Gi": 1 << 30, "100M": 100e6, "42": 42} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for in, want := range map[string]int{"25%": 1, "100%": 4, "0": 0, "3": 3, "50%": 2} {
		if got, err := ParseIntOrPercent(in, 4); err != nil || got != want {
			t.Errorf("ParseIntOrPercent(%q, 4) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(sample))
	f.Fuzz(func(t *testing.T, data []byte) {
		ds, err := Decode(data)
		if err != nil {
			return
		}
		for i := range ds {
			ds[i].Default()
			_ = ds[i].Validate()
			_ = ds[i].Spec.RevisionHash()
		}
	})
}

func TestValidateTraffic(t *testing.T) {
	for _, c := range []struct {
		name    string
		traffic Traffic
		known   []string
		field   string // "" for valid
	}{
		{"names", Traffic{Split: []TrafficTarget{{"a-1", 90}, {"a-2", 10}}}, []string{"a-2", "a-1"}, ""},
		{"aliases", Traffic{Split: []TrafficTarget{{"previous", 90}, {"latest", 10}}, Mirror: &Mirror{"previous", 5}}, []string{"a-2", "a-1"}, ""},
		{"unknown split", Traffic{Split: []TrafficTarget{{"latest", 90}, {"a-0", 10}}}, []string{"a-2", "a-1"}, "spec.traffic.split[1].revision"},
		{"no previous", Traffic{Split: []TrafficTarget{{"previous", 100}}}, []string{"a-2"}, "spec.traffic.split[0].revision"},
		{"unknown mirror", Traffic{Mirror: &Mirror{"a-9", 5}}, []string{"a-2"}, "spec.traffic.mirror.revision"},
	} {
		d := ModelDeployment{Metadata: ObjectMeta{Name: "a"}, Spec: ModelDeploymentSpec{Traffic: c.traffic}}
		err := d.ValidateTraffic(c.known)
		switch {
		case c.field == "" && err != nil:
			t.Errorf("%s: ValidateTraffic() = %v, want nil", c.name, err)
		case c.field != "" && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.field)):
			t.Errorf("%s: ValidateTraffic() = %v, want an error naming %s", c.name, err, c.field)
		}
	}
}
