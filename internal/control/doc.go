// Package control is shoal's control plane: the reconciler that keeps each
// ModelDeployment's revisions at their desired replica counts on a
// backend (rolling updates gated on readiness, drained stops), the
// autoscaler loop that feeds the gateway's load into internal/autoscale,
// the routing table it pushes to the gateway (only ready replicas, weighted
// by the rollout or by spec.traffic's split, with its mirror), the status
// and events it writes to the store, its own memory of each deployment (a
// canary's step and analysis, revisions' times to ready) kept in the store
// so a restart resumes where it stopped, and the control API (REST and
// JSON) that the CLI uses.
//
// It decides and acts; it does not store (internal/control/store), run
// processes (internal/replica/process), proxy requests (internal/gateway)
// or hold the decision rules of autoscaling and rollouts
// (internal/autoscale, internal/rollout).
package control
