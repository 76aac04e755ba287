package store

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// bucketState holds the controllers' private memory of each object (a
// canary's step and analysis, revisions' measured times to ready): what a
// restarted control plane needs to go on where it stopped, and no user
// should edit. It is kept apart from the objects so that writing it wakes
// no watcher.
var bucketState = []byte("controllerstate")

// PutState stores v (encoded as JSON) as the controller state of the
// object named name, replacing the previous one, in one fsynced
// transaction. It does not require the object to exist; Delete removes it
// with the object.
func (s *Store) PutState(name string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("state of %q: %w", name, err)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketState).Put([]byte(name), raw)
	})
}

// State decodes the controller state of the object named name into v. It
// reports false, and leaves v alone, when none is stored.
func (s *Store) State(name string, v any) (bool, error) {
	var raw []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketState).Get([]byte(name)); b != nil {
			raw = append([]byte(nil), b...)
		}
		return nil
	})
	if err != nil || raw == nil {
		return false, err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("state of %q: %w", name, err)
	}
	return true, nil
}
