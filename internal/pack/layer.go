package pack

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is the modification time of every file in a layer, so the layer's
// bytes depend on the files' contents only.
var epoch = time.Unix(0, 0)

// entry is one file or directory of a layer.
type entry struct {
	name string // in the tar, relative, slash-separated; dirs end in "/"
	src  string // file to copy; empty for a directory
	mode int64
	size int64
}

// binaryLayer is the shoal binary at BinaryPath, plus a world-writable /tmp
// (scratch has none, and the server may need a temporary directory).
func binaryLayer(bin string, mt types.MediaType) (v1.Layer, error) {
	st, err := os.Stat(bin)
	if err != nil {
		return nil, fmt.Errorf("shoal binary: %w", err)
	}
	ents := []entry{
		{name: strings.TrimPrefix(BinaryPath, "/"), src: bin, mode: 0o755, size: st.Size()},
		{name: "tmp/", mode: 0o1777},
	}
	return layerOf(ents, mt)
}

// modelLayer is the model repository (or single model file) under
// ModelRoot, as modelEntries lists it.
func modelLayer(model string, mt types.MediaType) (v1.Layer, error) {
	ents, err := modelEntries(model)
	if err != nil {
		return nil, err
	}
	return layerOf(ents, mt)
}

// modelEntries lists the model repository (or single model file) under
// ModelRoot: files sorted by name, owned by root, readable by everyone.
// Hidden entries at the top of a repository (serve ignores them) and
// __pycache__ directories (their contents vary from run to run) are left
// out.
func modelEntries(model string) ([]entry, error) {
	root := strings.TrimPrefix(ModelRoot, "/") + "/"
	ents := []entry{{name: root, mode: 0o755}}
	st, err := os.Stat(model)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if !st.IsDir() {
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("model: %s is not a regular file or directory", model)
		}
		return append(ents, entry{name: root + filepath.Base(model), src: model, mode: fileMode(st.Mode()), size: st.Size()}), nil
	}
	err = filepath.WalkDir(model, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(model, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		hidden := !strings.Contains(rel, "/") && strings.HasPrefix(rel, ".")
		if hidden || d.Name() == "__pycache__" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := os.Stat(p) // follows a symlink to its target
		if err != nil {
			return err
		}
		switch {
		case info.IsDir() && d.Type()&fs.ModeSymlink != 0:
			return fmt.Errorf("model: %s is a symbolic link to a directory, which pack does not follow", rel)
		case info.IsDir():
			ents = append(ents, entry{name: root + rel + "/", mode: 0o755})
		case info.Mode().IsRegular():
			ents = append(ents, entry{name: root + rel, src: p, mode: fileMode(info.Mode()), size: info.Size()})
		default:
			return fmt.Errorf("model: %s is not a regular file or directory", rel)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ents, nil
}

// fileMode keeps the executable bit of a file (scripts) and drops the rest.
func fileMode(m fs.FileMode) int64 {
	if m&0o111 != 0 {
		return 0o755
	}
	return 0o644
}

// layerOf returns a gzipped layer of ents. The tar is written afresh each
// time the layer is read (a digest, a write), from the files on disk; the
// compressed bytes are cached after the first read.
func layerOf(ents []entry, mt types.MediaType) (v1.Layer, error) {
	open := func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(writeTar(pw, ents)) }()
		return pr, nil
	}
	return tarball.LayerFromOpener(open,
		tarball.WithMediaType(mt),
		tarball.WithCompressionLevel(gzip.DefaultCompression),
		tarball.WithCompressedCaching)
}

// writeTar writes ents as a tar stream with fixed owners and times.
func writeTar(w io.Writer, ents []entry) error {
	tw := tar.NewWriter(w)
	for _, e := range ents {
		h := &tar.Header{
			Name:    e.name,
			Mode:    e.mode,
			ModTime: epoch,
		}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = e.size
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if e.src == "" {
			continue
		}
		if err := copyFile(tw, e); err != nil {
			return err
		}
	}
	return tw.Close()
}

// copyFile copies e's file into the tar, failing if its size changed since
// the layer was planned.
func copyFile(w io.Writer, e entry) error {
	f, err := os.Open(e.src)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, e.size+1))
	if err != nil {
		return fmt.Errorf("%s: %w", path.Base(e.name), err)
	}
	if n != e.size {
		return fmt.Errorf("%s: %w (size %d, now %d)", e.name, errChanged, e.size, n)
	}
	return nil
}

// errChanged: a file changed while the image was being built or written.
var errChanged = errors.New("file changed during the build")
