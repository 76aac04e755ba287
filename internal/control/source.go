package control

import (
	"context"
	"sync"

	"github.com/shoal-ml/shoal/internal/gateway"
)

// TableSource is a gateway.Source the control plane pushes routing tables
// into. Set hands the table to every watching gateway before it returns,
// so once Set returns no gateway sends new requests to a replica the table
// no longer has. The zero value is ready to use, with an empty table; its
// methods are safe for concurrent use.
type TableSource struct {
	mu      sync.Mutex
	table   *gateway.Table
	updates map[int]func(*gateway.Table)
	next    int
}

// Set installs t (which the caller must not modify afterwards).
func (s *TableSource) Set(t *gateway.Table) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.table = t
	for _, u := range s.updates {
		u(t)
	}
}

// Table returns the table last set (an empty one before any).
func (s *TableSource) Table() *gateway.Table {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.table == nil {
		return &gateway.Table{Models: map[string]gateway.Model{}}
	}
	return s.table
}

// Watch calls update with the current table, then with each table Set,
// until ctx is done.
func (s *TableSource) Watch(ctx context.Context, update func(*gateway.Table)) error {
	s.mu.Lock()
	if s.updates == nil {
		s.updates = map[int]func(*gateway.Table){}
	}
	id := s.next
	s.next++
	s.updates[id] = update
	t := s.table
	if t == nil {
		t = &gateway.Table{Models: map[string]gateway.Model{}}
	}
	update(t)
	s.mu.Unlock()
	<-ctx.Done()
	s.mu.Lock()
	delete(s.updates, id)
	s.mu.Unlock()
	return nil
}
