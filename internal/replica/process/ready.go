package process

import (
	"context"
	"net"
	"sync/atomic"
	"time"
)

// startPoll is how often a starting replica's port is tried. procsup
// checks the health of a starting process every 50ms; a replica that is
// ready 40ms after its start would wait 10 to 60ms more to be seen ready,
// which is most of a scale from zero's budget. Trying to connect costs a
// refused SYN on loopback, so a starting replica is watched closely.
const startPoll = 2 * time.Millisecond

// startingHealth wraps a health check for procsup: until the replica has
// passed once, a call waits for the replica's port to accept (trying every
// startPoll) and then checks its health, every startPoll, until it passes
// or ctx (procsup's per-check timeout) ends; afterwards it is the plain
// check. The replica is thus seen ready within a few milliseconds of
// being ready, with no change to the replica.
func startingHealth(check func(context.Context, string) error, addr string) func(context.Context) error {
	var passed atomic.Bool
	return func(ctx context.Context) error {
		if passed.Load() {
			return check(ctx, addr)
		}
		t := time.NewTicker(startPoll)
		defer t.Stop()
		var d net.Dialer
		for {
			c, err := d.DialContext(ctx, "tcp", addr)
			if err == nil {
				c.Close()
				if err = check(ctx, addr); err == nil {
					passed.Store(true)
					return nil
				}
			}
			select {
			case <-ctx.Done():
				return err
			case <-t.C:
			}
		}
	}
}
