package docker

import (
	"bytes"
	"context"
	"fmt"
	"strconv"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// Logs returns the last tail lines of the replica's output (its
// container's stdout and stderr, interleaved as written, read through the
// engine's log driver). While the replica has no container, or after its
// last attempt failed, a last line "shoal: ..." says why. It returns an
// error wrapping ErrNotFound for a replica the backend does not know.
func (b *Backend) Logs(ctx context.Context, id string, tail int) ([]byte, error) {
	b.mu.Lock()
	e := b.replicas[id]
	var cid string
	var lastErr error
	if e != nil {
		cid, lastErr = e.rec.Container, e.lastErr
	}
	b.mu.Unlock()
	if e == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	var buf bytes.Buffer
	if cid != "" && tail > 0 {
		rc, err := b.api.ContainerLogs(ctx, cid, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(tail)})
		if err != nil && !cerrdefs.IsNotFound(err) {
			return nil, fmt.Errorf("docker: logs of %s: %w", id, err)
		}
		if err == nil {
			// Without a TTY the engine multiplexes stdout and stderr.
			_, err = stdcopy.StdCopy(&buf, &buf, rc)
			rc.Close()
			if err != nil {
				return nil, fmt.Errorf("docker: logs of %s: %w", id, err)
			}
		}
	}
	if lastErr != nil {
		fmt.Fprintf(&buf, "shoal: %v\n", lastErr)
	}
	return buf.Bytes(), nil
}
