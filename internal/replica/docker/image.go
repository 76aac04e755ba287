package docker

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"

	"github.com/shoal-ml/shoal/internal/pack"
	"github.com/shoal-ml/shoal/internal/registry"
)

// revisionImage is the image of one revision, found or built once per
// Backend.
type revisionImage struct {
	mu    sync.Mutex // held while it is found or built
	id    string     // the engine's image ID (the config digest); "" until known
	model string     // the model's local path: Spec.Model, or its pulled copy
}

// image returns the engine's ID of the revision's image, and the local
// path of the model it holds (an oci:// model is pulled into
// Config.Models first). The image is
// tagged <ImageRepository>/<deployment>:<source>, where source is a digest
// of the model files and the shoal binary: the engine may already hold it
// (another revision of the same model, or a control plane that ran
// before), else it is built with internal/pack and streamed into the
// engine. Concurrent calls for one revision find or build it once.
func (b *Backend) image(ctx context.Context, s Spec) (id, model string, err error) {
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
			return ri.id, ri.model, nil
		} else if !cerrdefs.IsNotFound(err) {
			return "", "", fmt.Errorf("inspect image: %w", err)
		}
		ri.id = "" // removed behind our back: find or build it again
	}
	model = s.Model
	if registry.IsReference(model) {
		// Pulled and verified into the host's cache (once per digest),
		// then packaged like a local model.
		dir, _, err := b.cfg.Models.Fetch(ctx, model)
		if err != nil {
			return "", "", fmt.Errorf("pull model: %w", err)
		}
		model = dir
	}
	src, err := source(model, b.cfg.Binary)
	if err != nil {
		return "", "", fmt.Errorf("build image: %w", err)
	}
	tag := b.cfg.ImageRepository + "/" + s.Deployment + ":" + src
	info, err := b.api.ImageInspect(ctx, tag)
	if err == nil {
		ri.id, ri.model = info.ID, model
		return info.ID, model, nil
	} else if !cerrdefs.IsNotFound(err) {
		return "", "", fmt.Errorf("inspect image: %w", err)
	}
	img, err := pack.Image(ctx, pack.Options{ModelDir: model, Binary: b.cfg.Binary})
	if err != nil {
		return "", "", fmt.Errorf("build image: %w", err)
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return "", "", fmt.Errorf("build image: %w", err)
	}
	id = cfgName.String()
	if err := load(ctx, b.api, tag, func(w io.Writer) error { return pack.WriteTarball(w, tag, img) }); err != nil {
		return "", "", err
	}
	info, err = b.api.ImageInspect(ctx, tag)
	if err != nil {
		return "", "", fmt.Errorf("load image %s: %w", tag, err)
	}
	if info.ID != id {
		return "", "", fmt.Errorf("load image %s: the engine has %s, want %s", tag, info.ID, id)
	}
	b.cfg.Logger.Info("image loaded", "image", tag, "id", id)
	ri.id, ri.model = id, model
	return id, model, nil
}

// source returns a digest of what an image of model holds: the binary's
// bytes and each model file's path, executable bit and bytes (20 hex
// digits). Reading the files costs far less than building the image,
// whose layers are compressed.
func source(model, binary string) (string, error) {
	h := sha256.New()
	add := func(name, path string, mode fs.FileMode) error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		fmt.Fprintf(h, "%s\x00%t\x00", name, mode&0o111 != 0)
		_, err = io.Copy(h, f)
		return err
	}
	if err := add("shoal", binary, 0); err != nil {
		return "", err
	}
	st, err := os.Stat(model)
	if err != nil {
		return "", fmt.Errorf("model: %w", err)
	}
	if !st.IsDir() {
		if err := add("model/"+filepath.Base(model), model, st.Mode()); err != nil {
			return "", err
		}
	} else {
		err = filepath.WalkDir(model, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := os.Stat(p) // follows a symbolic link, as pack does
			if err != nil || !info.Mode().IsRegular() {
				return err
			}
			rel, err := filepath.Rel(model, p)
			if err != nil {
				return err
			}
			return add("models/"+filepath.ToSlash(rel), p, info.Mode())
		})
		if err != nil {
			return "", fmt.Errorf("model: %w", err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:20], nil
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
