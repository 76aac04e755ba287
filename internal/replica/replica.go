// Package replica holds what every replica backend shares: the Spec the
// control plane gives a backend to start a replica, and the Replica it
// reports back. The backends themselves live below it (process, docker);
// they only start, stop and list replicas and report their readiness,
// while rollouts, autoscaling and routing stay in the control plane.
package replica

import "time"

// Spec says what replica to start.
type Spec struct {
	// Deployment and Revision name the replica's owner. Required.
	Deployment, Revision string
	// Model is the model repository or file given to `shoal serve`.
	// Required.
	Model string
	// Args are extra `shoal serve` flags. Nil means none.
	Args []string
	// Env adds "KEY=value" entries to the replica's environment.
	Env []string
	// Backend is the deployment's spec.backend ("process", "docker"): a
	// router of backends picks by it; a backend itself ignores it. Empty
	// means the router's default.
	Backend string
	// MilliCPU limits the replica's CPU in thousandths of a core and
	// Memory its memory in bytes (the deployment's spec.resources). Zero
	// means no limit; a backend that cannot enforce a limit ignores it.
	MilliCPU, Memory int64
}

// Replica is one replica as a backend sees it now.
type Replica struct {
	ID         string `json:"id"`
	Deployment string `json:"deployment"`
	Revision   string `json:"revision"`
	// PID is the process id for the process backend; zero elsewhere.
	PID int `json:"pid,omitempty"`
	// Container is the container id for the docker backend.
	Container string    `json:"container,omitempty"`
	HTTP      string    `json:"http"` // host:port of its REST listener
	GRPC      string    `json:"grpc"` // host:port of its gRPC listener
	Started   time.Time `json:"started"`
	// Ready: running and passing its health check.
	Ready bool `json:"ready"`
	// Adopted: found running when the backend started, not started by it.
	Adopted bool `json:"adopted,omitempty"`
	// Restarts counts restarts by the supervisor.
	Restarts int `json:"restarts,omitempty"`
}
