// Package store keeps the control plane's objects (ModelDeployments, their
// events and the controllers' private state of each) in one file with atomic, fsynced transactions (bbolt), with
// optimistic concurrency through resource versions and a watch for
// controllers. A crash or kill -9 loses no acknowledged write. It does not
// reconcile anything: controllers read, watch and write through it.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/shoal-ml/shoal/api/v1alpha1"
)

// Errors returned by Store methods.
var (
	// ErrNotFound: no object of that name.
	ErrNotFound = errors.New("store: not found")
	// ErrExists: Create of a name that exists.
	ErrExists = errors.New("store: already exists")
	// ErrConflict: the object's resourceVersion is not the stored one
	// (someone else wrote it since it was read).
	ErrConflict = errors.New("store: conflict")
	// ErrClosed: the store is closed.
	ErrClosed = errors.New("store: closed")
)

var (
	bucketDeployments = []byte("modeldeployments")
	bucketEvents      = []byte("events")
)

// MaxEventsPerObject bounds the events kept per object; older ones are
// dropped.
const MaxEventsPerObject = 100

// Store is the object store. Open it with Open; it is safe for concurrent
// use. Close releases the file and ends every watch.
type Store struct {
	db  *bolt.DB
	now func() time.Time

	mu       sync.Mutex
	watchers map[chan Event]struct{}
	closed   bool
}

// EventType says what happened to an object in a watch.
type EventType string

// Watch event types.
const (
	Added    EventType = "ADDED"
	Modified EventType = "MODIFIED"
	Deleted  EventType = "DELETED"
)

// Event is one change seen by a watch. Object is the state after the change
// (the last state for Deleted).
type Event struct {
	Type   EventType
	Object v1alpha1.ModelDeployment
}

// Open opens (creating if needed) the store file at path. It fails at once
// if another process holds the file.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketDeployments, bucketEvents, bucketState} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &Store{db: db, now: time.Now, watchers: map[chan Event]struct{}{}}, nil
}

// Close closes the file and ends every watch. It is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for ch := range s.watchers {
		close(ch)
	}
	s.watchers = nil
	s.mu.Unlock()
	return s.db.Close()
}

// Get returns the object named name.
func (s *Store) Get(name string) (v1alpha1.ModelDeployment, error) {
	var d v1alpha1.ModelDeployment
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDeployments).Get([]byte(name))
		if b == nil {
			return fmt.Errorf("%w: %s %q", ErrNotFound, v1alpha1.KindModelDeployment, name)
		}
		return json.Unmarshal(b, &d)
	})
	return d, err
}

// List returns every object, ordered by name.
func (s *Store) List() ([]v1alpha1.ModelDeployment, error) {
	var out []v1alpha1.ModelDeployment
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDeployments).ForEach(func(_, v []byte) error {
			var d v1alpha1.ModelDeployment
			if err := json.Unmarshal(v, &d); err != nil {
				return err
			}
			out = append(out, d)
			return nil
		})
	})
	return out, err
}

// Create stores a new object, setting its resourceVersion, generation 1,
// UID and creation time; it returns the stored object. It returns ErrExists
// if the name is taken.
func (s *Store) Create(d v1alpha1.ModelDeployment) (v1alpha1.ModelDeployment, error) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDeployments)
		if b.Get([]byte(d.Metadata.Name)) != nil {
			return fmt.Errorf("%w: %s %q", ErrExists, v1alpha1.KindModelDeployment, d.Metadata.Name)
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		now := s.now().UTC().Truncate(time.Second)
		d.Metadata.ResourceVersion = strconv.FormatUint(seq, 10)
		d.Metadata.Generation = 1
		d.Metadata.UID = fmt.Sprintf("%s-%d", d.Metadata.Name, now.UnixNano())
		d.Metadata.CreationTimestamp = &now
		return put(b, d)
	})
	if err != nil {
		return d, err
	}
	s.notify(Event{Type: Added, Object: d})
	return d, nil
}

// Update replaces the spec (and metadata labels and annotations) of an
// existing object. d's resourceVersion must equal the stored one, or Update
// returns ErrConflict; an empty resourceVersion skips the check (a blind
// apply). The generation grows when the spec changes. Status is kept as
// stored: write it with UpdateStatus.
func (s *Store) Update(d v1alpha1.ModelDeployment) (v1alpha1.ModelDeployment, error) {
	return s.write(d, func(old, d *v1alpha1.ModelDeployment) {
		if !jsonEqual(old.Spec, d.Spec) {
			d.Metadata.Generation = old.Metadata.Generation + 1
		} else {
			d.Metadata.Generation = old.Metadata.Generation
		}
		d.Status = old.Status
	})
}

// UpdateStatus replaces only the status, with the same resourceVersion
// check as Update.
func (s *Store) UpdateStatus(d v1alpha1.ModelDeployment) (v1alpha1.ModelDeployment, error) {
	return s.write(d, func(old, d *v1alpha1.ModelDeployment) {
		status := d.Status
		*d = *old
		d.Status = status
	})
}

func (s *Store) write(d v1alpha1.ModelDeployment, merge func(old, d *v1alpha1.ModelDeployment)) (v1alpha1.ModelDeployment, error) {
	changed := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDeployments)
		raw := b.Get([]byte(d.Metadata.Name))
		if raw == nil {
			return fmt.Errorf("%w: %s %q", ErrNotFound, v1alpha1.KindModelDeployment, d.Metadata.Name)
		}
		var old v1alpha1.ModelDeployment
		if err := json.Unmarshal(raw, &old); err != nil {
			return err
		}
		if rv := d.Metadata.ResourceVersion; rv != "" && rv != old.Metadata.ResourceVersion {
			return fmt.Errorf("%w: %s %q has resourceVersion %s, the write was based on %s", ErrConflict,
				v1alpha1.KindModelDeployment, d.Metadata.Name, old.Metadata.ResourceVersion, rv)
		}
		d.Metadata.UID, d.Metadata.CreationTimestamp = old.Metadata.UID, old.Metadata.CreationTimestamp
		merge(&old, &d)
		d.Metadata.ResourceVersion = old.Metadata.ResourceVersion
		if jsonEqual(old, d) {
			return nil // nothing changed: keep the version, wake no watcher
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		d.Metadata.ResourceVersion = strconv.FormatUint(seq, 10)
		changed = true
		return put(b, d)
	})
	if err != nil {
		return d, err
	}
	if changed {
		s.notify(Event{Type: Modified, Object: d})
	}
	return d, nil
}

// Delete removes the object named name, its events and its controller
// state.
func (s *Store) Delete(name string) error {
	var last v1alpha1.ModelDeployment
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDeployments)
		raw := b.Get([]byte(name))
		if raw == nil {
			return fmt.Errorf("%w: %s %q", ErrNotFound, v1alpha1.KindModelDeployment, name)
		}
		if err := json.Unmarshal(raw, &last); err != nil {
			return err
		}
		if err := tx.Bucket(bucketEvents).DeleteBucket([]byte(name)); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return err
		}
		if err := tx.Bucket(bucketState).Delete([]byte(name)); err != nil {
			return err
		}
		return b.Delete([]byte(name))
	})
	if err != nil {
		return err
	}
	s.notify(Event{Type: Deleted, Object: last})
	return nil
}

func put(b *bolt.Bucket, d v1alpha1.ModelDeployment) error {
	raw, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return b.Put([]byte(d.Metadata.Name), raw)
}

func jsonEqual(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// Watch returns the current objects and a channel of the changes after
// them, until ctx is done or the store closes (then the channel closes).
// No change is missed; a change made while Watch runs may both appear in the
// list and arrive as an event, which level-based controllers tolerate.
// The channel is buffered; a watcher that falls more than 1024 events
// behind is dropped (its channel closes) and must watch again, as
// Kubernetes watches do.
func (s *Store) Watch(ctx context.Context) ([]v1alpha1.ModelDeployment, <-chan Event, error) {
	ch := make(chan Event, 1024)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, nil, ErrClosed
	}
	s.watchers[ch] = struct{}{}
	// List under s.mu so no event between the list and the registration is
	// lost: writers notify under s.mu too.
	list, err := s.List()
	s.mu.Unlock()
	if err != nil {
		s.unwatch(ch)
		return nil, nil, err
	}
	go func() {
		<-ctx.Done()
		s.unwatch(ch)
	}()
	return list, ch, nil
}

func (s *Store) unwatch(ch chan Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.watchers[ch]; ok {
		delete(s.watchers, ch)
		close(ch)
	}
}

func (s *Store) notify(e Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.watchers {
		select {
		case ch <- e:
		default: // too far behind: drop the watcher
			delete(s.watchers, ch)
			close(ch)
		}
	}
}
