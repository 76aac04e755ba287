package docker

import (
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"

	"github.com/shoal-ml/shoal/internal/pack"
)

// revisionImage is the image of one revision, built once per Backend.
type revisionImage struct {
	mu sync.Mutex // held while it is built and loaded
	id string     // the engine's image ID (the config digest); "" until loaded
}

// image returns the engine's ID of the revision's image, building it with
// internal/pack and loading it into the engine unless the engine already
// has it. Concurrent calls for one revision build it once.
func (b *Backend) image(ctx context.Context, s Spec) (string, error) {
	b.imgMu.Lock()
	ri := b.images[s.Revision]
	if ri == nil {
		ri = &revisionImage{}
		b.images[s.Revision] = ri
	}
	b.imgMu.Unlock()
	ri.mu.Lock()
	defer ri.mu.Unlock()
	if ri.id != "" {
		if _, err := b.api.ImageInspect(ctx, ri.id); err == nil {
			return ri.id, nil
		} else if !cerrdefs.IsNotFound(err) {
			return "", fmt.Errorf("inspect image: %w", err)
		}
		ri.id = "" // removed behind our back: build it again
	}
	img, err := pack.Image(ctx, pack.Options{ModelDir: s.Model, Binary: b.cfg.Binary})
	if err != nil {
		return "", fmt.Errorf("build image: %w", err)
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return "", fmt.Errorf("build image: %w", err)
	}
	id := cfgName.String()
	tag := b.cfg.ImageRepository + "/" + s.Deployment + ":" + s.Revision
	if info, err := b.api.ImageInspect(ctx, tag); err == nil && info.ID == id {
		ri.id = id
		return id, nil
	}
	if err := load(ctx, b.api, tag, func(w io.Writer) error { return pack.WriteTarball(w, tag, img) }); err != nil {
		return "", err
	}
	info, err := b.api.ImageInspect(ctx, tag)
	if err != nil {
		return "", fmt.Errorf("load image %s: %w", tag, err)
	}
	if info.ID != id {
		return "", fmt.Errorf("load image %s: the engine has %s, want %s", tag, info.ID, id)
	}
	b.cfg.Logger.Info("image loaded", "image", tag, "id", id)
	ri.id = id
	return id, nil
}

// load streams the tarball write writes into the engine (POST
// /images/load) and returns the error the engine reports, if any.
func load(ctx context.Context, api *client.Client, tag string, write func(io.Writer) error) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(write(pw)) }()
	defer pr.Close()
	resp, err := api.ImageLoad(ctx, pr, client.ImageLoadWithQuiet(true))
	if err != nil {
		return fmt.Errorf("load image %s: %w", tag, err)
	}
	defer resp.Body.Close()
	if !resp.JSON {
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return fmt.Errorf("load image %s: %w", tag, err)
		}
		return nil
	}
	// A stream of JSON messages; a failure is one with an error.
	dec := json.NewDecoder(resp.Body)
	for {
		var m struct {
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("load image %s: %w", tag, err)
		}
		if m.Error == "" {
			m.Error = m.ErrorDetail.Message
		}
		if m.Error != "" {
			return fmt.Errorf("load image %s: %s", tag, m.Error)
		}
	}
}

// checkBinary defaults *path to the running executable and checks it is a
// static linux ELF executable, which a scratch image can run.
func checkBinary(path *string) error {
	if *path == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("docker: find the running shoal binary: %w", err)
		}
		*path = exe
	}
	f, err := elf.Open(*path)
	if err != nil {
		return fmt.Errorf("docker: %w: %s: %w", pack.ErrNotLinuxBinary, *path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("docker: %w: %s: build a static one with CGO_ENABLED=0 go build ./cmd/shoal", pack.ErrDynamicBinary, *path)
		}
	}
	return nil
}
