// Package v1alpha1 holds shoal's declarative objects: ModelDeployment and its
// parts, with defaulting and validation. The same YAML is applied to
// `shoal up` (local processes), a Docker host and, later, Kubernetes as a
// CRD, so the JSON shape follows Kubernetes conventions (apiVersion, kind,
// metadata, spec, status). The package holds types and pure functions only:
// it stores nothing and reconciles nothing.
package v1alpha1

import "time"

// API group and version of these objects.
const (
	Group      = "shoal.dev"
	Version    = "v1alpha1"
	APIVersion = Group + "/" + Version

	KindModelDeployment = "ModelDeployment"
)

// TypeMeta names an object's schema, as Kubernetes does.
type TypeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// ObjectMeta is the metadata every object carries. Name is required; the
// store sets ResourceVersion, Generation, UID and CreationTimestamp.
type ObjectMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// ResourceVersion changes on every write; an update that carries a
	// stale one is refused (optimistic concurrency).
	ResourceVersion string `json:"resourceVersion,omitempty"`
	// Generation counts changes of the spec.
	Generation        int64      `json:"generation,omitempty"`
	UID               string     `json:"uid,omitempty"`
	CreationTimestamp *time.Time `json:"creationTimestamp,omitempty"`
}

// ModelDeployment runs a model as a scalable service: replicas of its
// current revision behind the gateway, autoscaled, rolled out safely.
type ModelDeployment struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta            `json:"metadata"`
	Spec     ModelDeploymentSpec   `json:"spec"`
	Status   ModelDeploymentStatus `json:"status,omitempty"`
}

// ModelDeploymentSpec is the desired state. A change to Model or Runtime
// creates a new immutable revision; Scaling, Rollout and Traffic changes do
// not.
type ModelDeploymentSpec struct {
	Model   ModelSource `json:"model"`
	Runtime Runtime     `json:"runtime,omitempty"`
	// Backend runs the replicas: "process" (default), "docker" or
	// "kubernetes".
	Backend   string    `json:"backend,omitempty"`
	Scaling   Scaling   `json:"scaling,omitempty"`
	Rollout   Rollout   `json:"rollout,omitempty"`
	Traffic   Traffic   `json:"traffic,omitempty"`
	Resources Resources `json:"resources,omitempty"`
}

// ModelSource says where the model comes from.
type ModelSource struct {
	// URI is a model repository directory or model file (a path, relative
	// to the applied file's directory), or an oci:// reference.
	URI string `json:"uri"`
	// Format names the backend ("xgboost", "lightgbm", "onnx", "python",
	// "http"); empty means inferred from the artifact, as `shoal serve` does.
	Format string `json:"format,omitempty"`
}

// Runtime configures each replica's model server.
type Runtime struct {
	// Args are extra `shoal serve` flags, e.g. ["-default-timeout", "2s"].
	Args []string `json:"args,omitempty"`
	// Env adds environment variables to each replica.
	Env map[string]string `json:"env,omitempty"`
	// Batching enables dynamic batching with these model.yaml settings
	// (max_batch_size, max_queue_delay, ...); nil leaves the model's own.
	Batching map[string]any `json:"batching,omitempty"`
}

// Scaling bounds and drives the autoscaler.
type Scaling struct {
	// MinReplicas defaults to 1 (0 allows scale to zero). MaxReplicas
	// defaults to max(MinReplicas, 4).
	MinReplicas *int32 `json:"minReplicas,omitempty"`
	MaxReplicas int32  `json:"maxReplicas,omitempty"`
	// Metric is "concurrency" (default) or "rps".
	Metric string `json:"metric,omitempty"`
	// Target is the metric's target per replica; defaults to 8 for
	// concurrency and 100 for rps.
	Target float64 `json:"target,omitempty"`
	// ScaleToZeroGracePeriod is how long a revision must see no traffic
	// before it goes to zero (only when MinReplicas is 0); default 30s.
	ScaleToZeroGracePeriod Duration `json:"scaleToZeroGracePeriod,omitempty"`
	// StableWindow (default 60s) and PanicWindow (default 6s) are the
	// averaging windows; PanicThreshold (default 2.0: 200% of target)
	// enters panic mode.
	StableWindow   Duration `json:"stableWindow,omitempty"`
	PanicWindow    Duration `json:"panicWindow,omitempty"`
	PanicThreshold float64  `json:"panicThreshold,omitempty"`
	// MaxScaleUpRate (default 1000) and MaxScaleDownRate (default 2) bound
	// one decision to ready*rate and ready/rate replicas.
	MaxScaleUpRate   float64 `json:"maxScaleUpRate,omitempty"`
	MaxScaleDownRate float64 `json:"maxScaleDownRate,omitempty"`
}

// Rollout says how a new revision replaces the current one.
type Rollout struct {
	// Strategy is "rolling" (default) or "canary".
	Strategy string `json:"strategy,omitempty"`
	// MaxSurge and MaxUnavailable bound a rolling update, as counts ("1")
	// or percentages ("25%"); defaults "25%" and "0".
	MaxSurge       string `json:"maxSurge,omitempty"`
	MaxUnavailable string `json:"maxUnavailable,omitempty"`
	// ProgressDeadline is how long a rolling update may go without a new
	// replica becoming ready before it is reported stalled (an event and
	// the condition RolloutProgressing False, reason
	// ProgressDeadlineExceeded); default 120s. The update keeps waiting:
	// the old replicas go on serving.
	ProgressDeadline Duration `json:"progressDeadline,omitempty"`
	// Steps of a canary: traffic weight and how long to hold it.
	Steps []CanaryStep `json:"steps,omitempty"`
	// Analysis judges each canary step.
	Analysis Analysis `json:"analysis,omitempty"`
}

// CanaryStep sends Weight percent of traffic to the new revision for Pause.
type CanaryStep struct {
	Weight int32    `json:"weight"`
	Pause  Duration `json:"pause,omitempty"`
}

// Analysis holds the thresholds a canary step must meet.
type Analysis struct {
	// MaxErrorRate is the highest acceptable share of failed requests
	// (default 0.05).
	MaxErrorRate float64 `json:"maxErrorRate,omitempty"`
	// MaxLatencyRatio is the highest acceptable canary p99 / stable p99
	// (default 1.5).
	MaxLatencyRatio float64 `json:"maxLatencyRatio,omitempty"`
	// LatencySlack is how much slower than the stable p99 the canary's p99
	// may always be, whatever MaxLatencyRatio says: at millisecond
	// latencies a histogram bucket or a fresh process's cold caches move
	// p99 by a few milliseconds, which is noise, not a regression. Nil
	// defaults to 10ms; "0s" means none.
	LatencySlack *Duration `json:"latencySlack,omitempty"`
	// MinRequests must be seen in a step before it is judged (default 50).
	MinRequests int64 `json:"minRequests,omitempty"`
}

// Traffic pins how requests split between revisions and what is mirrored.
type Traffic struct {
	// Split pins traffic per revision (weights sum to 100); empty means
	// all traffic goes to the latest ready revision (or as a rollout says).
	Split []TrafficTarget `json:"split,omitempty"`
	// Mirror sends a copy of Percent of requests to Revision, whose
	// responses are compared and discarded.
	Mirror *Mirror `json:"mirror,omitempty"`
}

// TrafficTarget is one revision's share of traffic.
type TrafficTarget struct {
	Revision string `json:"revision"`
	Weight   int32  `json:"weight"`
}

// Mirror shadows traffic to a revision.
type Mirror struct {
	Revision string  `json:"revision"`
	Percent  float64 `json:"percent"`
}

// Resources limits each replica.
type Resources struct {
	// CPU in cores ("500m", "2") and Memory in bytes with a suffix
	// ("256Mi", "1Gi"). Empty means no limit.
	CPU    string `json:"cpu,omitempty"`
	Memory string `json:"memory,omitempty"`
}

// ModelDeploymentStatus is the observed state, written by the control plane.
type ModelDeploymentStatus struct {
	ObservedGeneration int64            `json:"observedGeneration,omitempty"`
	Revisions          []RevisionStatus `json:"revisions,omitempty"`
	Conditions         []Condition      `json:"conditions,omitempty"`
	// URL is where the gateway serves the model.
	URL string `json:"url,omitempty"`
}

// RevisionStatus reports one revision.
type RevisionStatus struct {
	Name            string `json:"name"`
	Hash            string `json:"hash"`
	DesiredReplicas int32  `json:"desiredReplicas"`
	ReadyReplicas   int32  `json:"readyReplicas"`
	TrafficPercent  int32  `json:"trafficPercent"`
}

// Condition is a Kubernetes-style condition ("Ready", "RolloutProgressing").
type Condition struct {
	Type               string    `json:"type"`
	Status             string    `json:"status"` // "True", "False", "Unknown"
	Reason             string    `json:"reason,omitempty"`
	Message            string    `json:"message,omitempty"`
	LastTransitionTime time.Time `json:"lastTransitionTime,omitempty"`
}
