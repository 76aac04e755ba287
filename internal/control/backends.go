package control

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/shoal-ml/shoal/api/v1alpha1"
	"github.com/shoal-ml/shoal/internal/replica"
)

// Errors of Backends.
var (
	// ErrBackendNotEnabled: a deployment asks for a backend (spec.backend)
	// that this control plane does not run.
	ErrBackendNotEnabled = errors.New("control: backend not enabled")
	// ErrNoReplica: no backend knows the replica.
	ErrNoReplica = errors.New("control: no such replica")
)

// Backends is a Backend that runs each replica on one of several
// backends, picked by its Spec.Backend (the deployment's spec.backend). A
// replica ID is unique across them (it starts with the revision name, and
// a revision has one backend). Its methods are safe for concurrent use if
// those of its backends are; it must not be changed once in use.
type Backends struct {
	// Default names the backend of a Spec with no Backend. Empty means
	// "process".
	Default string
	// ByName maps spec.backend values ("process", "docker") to backends.
	// A name missing here makes Start fail with ErrBackendNotEnabled.
	ByName map[string]Backend
}

// Start starts the replica on the backend s.Backend names.
func (bs *Backends) Start(s replica.Spec) (Replica, error) {
	name := s.Backend
	if name == "" {
		name = bs.defaultName()
	}
	b := bs.ByName[name]
	if b == nil {
		return Replica{}, fmt.Errorf("%w: %q (enabled: %s)", ErrBackendNotEnabled, name, strings.Join(bs.names(), ", "))
	}
	return b.Start(s)
}

// Stop stops the replica on the backend that lists it.
func (bs *Backends) Stop(id string) error {
	b := bs.owner(id)
	if b == nil {
		return fmt.Errorf("%w: %s", ErrNoReplica, id)
	}
	return b.Stop(id)
}

// List returns the replicas of every backend, ordered by ID.
func (bs *Backends) List() []Replica {
	var out []Replica
	for _, n := range bs.names() {
		out = append(out, bs.ByName[n].List()...)
	}
	slices.SortFunc(out, func(x, y Replica) int { return strings.Compare(x.ID, y.ID) })
	return out
}

// Logs returns the last tail lines of a replica's output: from the
// backend's own Logs method if it has one (docker), else from the file
// its LogPath method names (process). A backend with neither has no logs.
func (bs *Backends) Logs(ctx context.Context, id string, tail int) ([]byte, error) {
	b := bs.owner(id)
	if b == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoReplica, id)
	}
	switch b := b.(type) {
	case interface {
		Logs(ctx context.Context, id string, tail int) ([]byte, error)
	}:
		return b.Logs(ctx, id, tail)
	case interface{ LogPath(id string) string }:
		data, err := os.ReadFile(b.LogPath(id))
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return data, err
	}
	return nil, nil
}

func (bs *Backends) owner(id string) Backend {
	for _, n := range bs.names() {
		b := bs.ByName[n]
		for _, r := range b.List() {
			if r.ID == id {
				return b
			}
		}
	}
	return nil
}

func (bs *Backends) defaultName() string {
	if bs.Default == "" {
		return "process"
	}
	return bs.Default
}

func (bs *Backends) names() []string {
	return slices.Sorted(maps.Keys(bs.ByName))
}

// resourceLimits reads spec.resources as a replica's limits: millicores
// and bytes, zero for none. The spec is validated, so a quantity that does
// not parse (it cannot) means no limit.
func resourceLimits(r v1alpha1.Resources) (milliCPU, memory int64) {
	if r.CPU != "" {
		milliCPU, _ = v1alpha1.ParseCPU(r.CPU)
	}
	if r.Memory != "" {
		memory, _ = v1alpha1.ParseBytes(r.Memory)
	}
	return milliCPU, memory
}
