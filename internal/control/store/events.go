package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ObjectEvent is something that happened to an object: a scaling decision,
// a rollout step, a replica restart. Events are kept per object, newest
// last, at most MaxEventsPerObject.
type ObjectEvent struct {
	Time time.Time `json:"time"`
	// Type is "Normal" or "Warning".
	Type string `json:"type"`
	// Reason is a short CamelCase word ("ScaledUp", "RolledBack").
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// Record appends an event to the object's history. It does not require
// the object to exist (events may outlive a failed create).
func (s *Store) Record(name string, e ObjectEvent) error {
	if e.Time.IsZero() {
		e.Time = s.now().UTC()
	}
	raw, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketEvents).CreateBucketIfNotExists([]byte(name))
		if err != nil {
			return err
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		if err := b.Put(binary.BigEndian.AppendUint64(nil, seq), raw); err != nil {
			return err
		}
		n := 0
		c := b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			n++
		}
		for ; n > MaxEventsPerObject; n-- {
			k, _ := b.Cursor().First()
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// Events returns the object's recorded events, oldest first.
func (s *Store) Events(name string) ([]ObjectEvent, error) {
	var out []ObjectEvent
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents).Bucket([]byte(name))
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			var e ObjectEvent
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("event of %q: %w", name, err)
			}
			out = append(out, e)
			return nil
		})
	})
	return out, err
}
