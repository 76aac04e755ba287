package gateway

import (
	"bytes"
	"context"
	"errors"
	"os"
	"time"
)

// Source discovers the routing table. Watch calls update with the current
// table, then again with each new one, until ctx is done or the source
// fails for good; it returns then. update is called from one goroutine
// at a time and must not keep the caller long.
//
// Sources today: FileSource (a hot-reloaded file), ControlSource (a
// control plane's watch API, for a standalone gateway), StaticSource, the
// control plane's in-process source (internal/control), and the labelled
// containers of a Docker engine (internal/replica/docker.Discovery).
// Kubernetes EndpointSlices will be a further implementation.
type Source interface {
	Watch(ctx context.Context, update func(*Table)) error
}

// StaticSource is a Source of one fixed table.
type StaticSource struct{ Table *Table }

// Watch hands over the table and waits for ctx.
func (s StaticSource) Watch(ctx context.Context, update func(*Table)) error {
	update(s.Table)
	<-ctx.Done()
	return nil
}

// FileSource reads the routing table from a YAML file and reloads it when
// the file changes (by modification time, size or content), checking at
// each tick. A file that cannot be read or parsed after the first load
// keeps the last good table and is reported through OnError.
type FileSource struct {
	// Path of the routes file. Required.
	Path string
	// Tick delivers the times at which to check the file. Nil means a
	// ticker of Interval.
	Tick <-chan time.Time
	// Interval between checks when Tick is nil. Zero means 1s.
	Interval time.Duration
	// OnError receives reload errors. Nil ignores them.
	OnError func(error)
}

// Watch loads the file (returning its error if the first load fails),
// then reloads it on change until ctx is done.
func (s *FileSource) Watch(ctx context.Context, update func(*Table)) error {
	if s.Path == "" {
		return errors.New("gateway: FileSource.Path is empty")
	}
	tick := s.Tick
	if tick == nil {
		iv := s.Interval
		if iv <= 0 {
			iv = time.Second
		}
		t := time.NewTicker(iv)
		defer t.Stop()
		tick = t.C
	}
	var last []byte
	var lastMod time.Time
	var lastSize int64 = -1
	load := func() error {
		fi, err := os.Stat(s.Path)
		if err != nil {
			return err
		}
		if fi.ModTime().Equal(lastMod) && fi.Size() == lastSize {
			return nil
		}
		b, err := os.ReadFile(s.Path)
		if err != nil {
			return err
		}
		lastMod, lastSize = fi.ModTime(), fi.Size()
		if bytes.Equal(b, last) {
			return nil
		}
		t, err := ParseTable(b)
		if err != nil {
			return err
		}
		last = b
		update(t)
		return nil
	}
	if err := load(); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			if err := load(); err != nil && s.OnError != nil {
				s.OnError(err)
			}
		}
	}
}
