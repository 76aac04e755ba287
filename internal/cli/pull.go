package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shoal-ml/shoal/api/v1alpha1"
	"github.com/shoal-ml/shoal/internal/control"
	"github.com/shoal-ml/shoal/internal/control/store"
	"github.com/shoal-ml/shoal/internal/gateway"
	"github.com/shoal-ml/shoal/internal/registry"
)

func runPull(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var maxSize *int64
	pos, err := parseTransfer("pull", "oci://HOST/REPOSITORY[:TAG|@sha256:HEX] DIR",
		"Pulls a model artifact and writes its model repository into DIR (which must\n"+
			"not exist or be empty), verifying every blob digest, and the manifest digest\n"+
			"when the reference has one. Serve it with `shoal serve DIR`.",
		0, args, stderr, func(fl *flag.FlagSet) {
			maxSize = fl.Int64("max-size", registry.DefaultMaxBytes, "largest artifact accepted, `bytes` (compressed layer and unpacked files)")
		})
	if err != nil {
		return err
	}
	if *maxSize <= 0 {
		return usageError{fmt.Errorf("-max-size %d: want a positive number of bytes", *maxSize)}
	}
	c := &registry.Client{MaxBytes: *maxSize}
	p, err := c.Pull(ctx, pos[0], pos[1])
	if err != nil {
		return err
	}
	var names []string
	for _, m := range p.Config.Models {
		names = append(names, m.Name)
	}
	fmt.Fprintf(stdout, "%s: %s into %s\n", p.Digest, strings.Join(names, ", "), pos[1])
	return nil
}

// modelCacheDir returns the default directory of `shoal serve oci://`'s
// cache: $SHOAL_MODEL_CACHE, else shoal/models under the user's cache
// directory, else under the system's temporary directory.
func modelCacheDir() string {
	if d := os.Getenv("SHOAL_MODEL_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "shoal", "models")
	}
	return filepath.Join(os.TempDir(), "shoal-models")
}

// upRegistry is shoal up's embedded OCI registry: its blobs and manifests
// live in the state directory; it is served under /v2/ on the control
// API's listener (the control API uses only /v1/), or on a listener of its
// own when -registry names an address.
type upRegistry struct {
	reg *registry.Registry
	// addr is the host:port that oci:// references to it name.
	addr string
	// own is its own listener; nil when it shares the control API's.
	own net.Listener
	// resolve pins oci:// references (control.ResolveModel). References
	// to this registry are answered in process, so objects applied at
	// startup resolve before any listener serves.
	resolve control.ResolveModel
	// keys are required on its own listener too (-control-keys), but for
	// loopbackPull; none: no authentication.
	keys []gateway.APIKey
	// client reaches this registry in process (and others over the
	// network): the docker backend pulls oci:// models with it.
	client *registry.Client
}

// openUpRegistry opens the registry stored in state/registry; addr is
// -registry (empty: share controlAddr's listener).
func openUpRegistry(state, controlAddr, addr string, log *slog.Logger) (*upRegistry, error) {
	reg, err := registry.Open(filepath.Join(state, "registry"), log)
	if err != nil {
		return nil, err
	}
	u := &upRegistry{reg: reg, addr: controlAddr}
	if addr != "" {
		if u.own, err = net.Listen("tcp", addr); err != nil {
			reg.Close()
			return nil, fmt.Errorf("registry: %w", err)
		}
		u.addr = u.own.Addr().String()
	}
	c := &registry.Client{Transport: reg.Transport(nil, registry.LoopbackHosts(u.addr)...)}
	u.client = c
	u.resolve = func(ctx context.Context, uri string) (string, error) {
		if !registry.IsReference(uri) {
			return uri, nil
		}
		return c.Resolve(ctx, uri)
	}
	return u, nil
}

// pinStartup pins the model of an object given to shoal up at startup.
// When its reference does not resolve (the registry is down) but the
// stored object of that name runs the same reference pinned, the stored
// pin is kept, with a warning: a restart does not need the registry.
func (u *upRegistry) pinStartup(ctx context.Context, st *store.Store, d *v1alpha1.ModelDeployment, log *slog.Logger) error {
	uri := d.Spec.Model.URI
	err := control.PinModel(ctx, u.resolve, d)
	if err == nil {
		return nil
	}
	if old, gerr := st.Get(d.Metadata.Name); gerr == nil && strings.HasPrefix(old.Spec.Model.URI, uri+"@") {
		log.Warn("model reference not resolved; keeping the stored pin", "deployment", d.Metadata.Name, "uri", old.Spec.Model.URI, "err", err)
		d.Spec.Model.URI = old.Spec.Model.URI
		return nil
	}
	return err
}

// handler returns h with the registry under /v2/ when the registry has no
// listener of its own.
func (u *upRegistry) handler(h http.Handler) http.Handler {
	if u.own != nil {
		return h
	}
	mux := http.NewServeMux()
	mux.Handle("/v2/", u.reg)
	mux.Handle("/", h)
	return mux
}

// serve serves the registry on its own listener until ctx is done; with
// none it returns at once.
func (u *upRegistry) serve(ctx context.Context) error {
	if u.own == nil {
		return nil
	}
	srv := &http.Server{Handler: control.RequireKey(u.keys, loopbackPull, u.reg), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(u.own); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// loopbackPull reports whether r reads the registry (GET or HEAD under
// /v2/, but not the /v2/ version check, whose 401 tells clients to send
// credentials) from a loopback address: the pulls of shoal up's own
// replicas (shoal serve oci://127.0.0.1:...), which have no token. Pushes
// and everything else need a key when there are keys.
func loopbackPull(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead || !strings.HasPrefix(r.URL.Path, "/v2/") || r.URL.Path == "/v2/" {
		return false
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.IsLoopback()
}

// Close closes the registry's journal and its own listener.
func (u *upRegistry) Close() error {
	if u.own != nil {
		u.own.Close()
	}
	return u.reg.Close()
}
