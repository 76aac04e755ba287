// Package balance holds the gateway's load-balancing policies and the
// decider that ejects outlying replicas. Everything here is deterministic:
// randomness and time come from the caller, there is no I/O and no
// goroutine. It does not know about HTTP, gRPC or the routing table.
package balance

import "sync/atomic"

// Replica is the balancer's view of one replica: an address and the number
// of requests the caller has in flight to it. It is safe for concurrent
// use; the zero value is not usable, create one with NewReplica.
type Replica struct {
	// Addr identifies the replica (host:port).
	Addr string
	// Limit is the most requests a policy lets be in flight to the replica
	// at once; zero means no limit.
	Limit int64

	inflight atomic.Int64
	release  func()
}

// NewReplica returns a replica with no request in flight.
func NewReplica(addr string, limit int64) *Replica {
	r := &Replica{Addr: addr, Limit: limit}
	r.release = func() { r.inflight.Add(-1) }
	return r
}

// InFlight reports the requests in flight to r.
func (r *Replica) InFlight() int64 { return r.inflight.Load() }

// full reports whether r is at its limit.
func (r *Replica) full(n int64) bool { return r.Limit > 0 && n >= r.Limit }

// acquire counts one more request in flight to r, unless r is at its
// limit; it reports whether it did.
func (r *Replica) acquire() bool {
	for {
		n := r.inflight.Load()
		if r.full(n) {
			return false
		}
		if r.inflight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Policy picks one of replicas for a request and counts it in flight; the
// caller must call release once the request is done. rnd is a uniformly
// random number the policy may use. Policy returns nil, nil when replicas
// is empty or every replica is at its limit. Policies never allocate.
type Policy func(replicas []*Replica, rnd uint64) (r *Replica, release func())

// P2C is the default policy: the replica with fewer requests in flight of
// two picked at random (power of two choices), falling back to the least
// loaded of all when both are at their limit.
func P2C(replicas []*Replica, rnd uint64) (*Replica, func()) {
	n := uint64(len(replicas))
	switch n {
	case 0:
		return nil, nil
	case 1:
		return tryAcquire(replicas[0])
	}
	i := rnd % n
	j := (rnd >> 32) % (n - 1)
	if j >= i {
		j++
	}
	a, b := replicas[i], replicas[j]
	if b.InFlight() < a.InFlight() {
		a, b = b, a
	}
	if a.acquire() {
		return a, a.release
	}
	if b.acquire() {
		return b, b.release
	}
	return LeastRequest(replicas, rnd)
}

// LeastRequest picks the replica with the fewest requests in flight; rnd
// chooses where the scan starts, so ties are broken at random.
func LeastRequest(replicas []*Replica, rnd uint64) (*Replica, func()) {
	n := len(replicas)
	for tries := 0; tries < 3; tries++ { // a lost race at the limit rescans
		var best *Replica
		var bestN int64
		start := int(rnd % uint64(max(n, 1)))
		for k := range n {
			r := replicas[(start+k)%n]
			if c := r.InFlight(); !r.full(c) && (best == nil || c < bestN) {
				best, bestN = r, c
			}
		}
		if best == nil {
			return nil, nil
		}
		if best.acquire() {
			return best, best.release
		}
	}
	return nil, nil
}

// RoundRobin returns a policy that takes the replicas in turn, skipping
// those at their limit. Each returned policy has its own position.
func RoundRobin() Policy {
	var next atomic.Uint64
	return func(replicas []*Replica, _ uint64) (*Replica, func()) {
		n := uint64(len(replicas))
		if n == 0 {
			return nil, nil
		}
		start := next.Add(1) - 1
		for k := range n {
			r := replicas[(start+k)%n]
			if r.acquire() {
				return r, r.release
			}
		}
		return nil, nil
	}
}

// Hash picks the replica that rendezvous hashing assigns to key, so that a
// key sticks to its replica while the set of replicas allows, and moves as
// little as possible when it changes. At its limit the next-ranked replica
// takes the request.
func Hash(replicas []*Replica, key uint64) (*Replica, func()) {
	for tries := 0; tries < len(replicas); tries++ {
		var best *Replica
		var bestScore uint64
		for _, r := range replicas {
			if c := r.InFlight(); r.full(c) {
				continue
			}
			if s := mix(key ^ strHash(r.Addr)); best == nil || s > bestScore {
				best, bestScore = r, s
			}
		}
		if best == nil {
			return nil, nil
		}
		if best.acquire() {
			return best, best.release
		}
	}
	return nil, nil
}

func tryAcquire(r *Replica) (*Replica, func()) {
	if r.acquire() {
		return r, r.release
	}
	return nil, nil
}

// StringKey hashes a sticky key (such as a user id) for Hash.
func StringKey(s string) uint64 { return strHash(s) }

// strHash is FNV-1a, 64 bits.
func strHash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// mix is the splitmix64 finaliser.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
