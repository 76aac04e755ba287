package registry

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
)

// epoch is the modification time of every entry of a layer, so the same
// files make the same layer whenever and wherever they are packed.
var epoch = time.Unix(0, 0).UTC()

// writeLayer writes src as a gzip-compressed tar archive to w (at gzip's
// fastest level: model weights hardly compress, and the better levels
// take ten times as long on them for nothing): entries in
// lexical order, directories before their contents, times, owners and
// modes normalized (0755 directories and executables, 0644 other files).
// Symbolic links and special files are refused; entries whose names start
// with "." are left out.
func writeLayer(w io.Writer, src Source) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	dirHeader := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX})
	}
	if src.Prefix != "" {
		if err := dirHeader(src.Prefix); err != nil {
			return err
		}
	}
	err = filepath.WalkDir(src.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == src.Dir {
			return nil
		}
		rel, err := filepath.Rel(src.Dir, p)
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		name := path.Join(src.Prefix, filepath.ToSlash(rel))
		switch {
		case d.IsDir():
			return dirHeader(name)
		case d.Type().IsRegular():
		default:
			return fmt.Errorf("%s: not a regular file or directory (links are not packed)", p)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		mode := int64(0o644)
		if fi.Mode()&0o111 != 0 {
			mode = 0o755
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: fi.Size(), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		if _, err := io.Copy(tw, f); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// Errors of extract, wrapped with the entry's name.
var (
	// ErrUnsafePath is an entry whose path is absolute or leaves the
	// target directory.
	ErrUnsafePath = errors.New("registry: archive path escapes the target directory")
	// ErrEntryType is an entry that is neither a regular file nor a
	// directory (a symbolic or hard link, a device, a FIFO).
	ErrEntryType = errors.New("registry: archive entry is not a regular file or directory")
	// ErrTooLarge is an artifact beyond the size or entry limit.
	ErrTooLarge = errors.New("registry: artifact too large")
)

// maxEntries bounds the number of entries of a layer.
const maxEntries = 100_000

// extract unpacks the tar archive r into dir (which exists), refusing
// every entry that is not a regular file or directory, every path that is
// not local to dir, a file written twice, and more than maxBytes of file
// content.
func extract(r io.Reader, dir string, maxBytes int64) error {
	tr := tar.NewReader(r)
	var total int64
	for n := 0; ; n++ {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read layer: %w", err)
		}
		if n >= maxEntries {
			return fmt.Errorf("%w: more than %d entries", ErrTooLarge, maxEntries)
		}
		name := strings.TrimSuffix(h.Name, "/")
		if name == "" || strings.Contains(name, `\`) || !filepath.IsLocal(filepath.FromSlash(name)) {
			return fmt.Errorf("%w: %q", ErrUnsafePath, h.Name)
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if h.Size < 0 || h.Size > maxBytes-total {
				return fmt.Errorf("%w: more than %d bytes unpacked", ErrTooLarge, maxBytes)
			}
			total += h.Size
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			mode := os.FileMode(0o644)
			if h.Mode&0o111 != 0 {
				mode = 0o755
			}
			f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
			if err != nil {
				return fmt.Errorf("archive entry %q: %w", h.Name, err)
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("archive entry %q: %w", h.Name, err)
			}
		default:
			return fmt.Errorf("%w: %q (type %q)", ErrEntryType, h.Name, h.Typeflag)
		}
	}
}
