package pack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ContextOptions says what Docker build context to write for models that
// run custom code. Dir and PythonBase are required; every other field's
// zero value is documented.
type ContextOptions struct {
	// ModelDir is a model repository directory or a single model file.
	ModelDir string
	// Binary is the path of a static linux shoal binary. Empty means the
	// running executable; a dynamically linked binary is refused.
	Binary string
	// PythonBase is the image to build FROM ("python:3.11-slim"): it
	// provides the interpreter and pip.
	PythonBase string
	// Requirements is a requirements.txt whose packages the image
	// installs with pip. Empty means none.
	Requirements string
	// Packages are further pip requirement specifiers ("scikit-learn==1.5.2").
	// numpy is added when a model uses the python backend (its worker
	// needs it) and no requirement names it.
	Packages []string
	// Source is the org.opencontainers.image.source label. Empty sets none.
	Source string
	// Created is the org.opencontainers.image.created label. Zero means
	// the Unix epoch.
	Created time.Time
	// Dir is the build context directory to write. It must be absent or
	// empty.
	Dir string
	// Progress, if set, receives one line per step.
	Progress func(string)
}

// ErrContextDirNotEmpty: ContextOptions.Dir exists and holds files.
var ErrContextDirNotEmpty = errors.New("pack: build context directory is not empty")

// Context writes a Docker build context to o.Dir: a Dockerfile FROM
// o.PythonBase that pip-installs the listed packages, the shoal binary, the
// model repository under ModelRoot, and the same user, entrypoint, ports
// and labels Image gives. `docker build -t NAME o.Dir` then builds the
// image with the user's own docker. It returns the models it described.
//
// Any repository works, native formats included; it is meant for the
// python and http backends, which need an interpreter.
func Context(ctx context.Context, o ContextOptions) ([]Model, error) {
	if o.ModelDir == "" || o.Dir == "" || o.PythonBase == "" {
		return nil, errors.New("pack: ContextOptions needs ModelDir, Dir and PythonBase")
	}
	if strings.ContainsAny(o.PythonBase, " \t\r\n") {
		return nil, fmt.Errorf("pack: python base image %q has white space", o.PythonBase)
	}
	opt := Options{Binary: o.Binary, Progress: o.Progress}
	bin, err := opt.binary()
	if err != nil {
		return nil, err
	}
	if _, err := CheckBinary(bin); err != nil {
		return nil, err
	}
	opt.progress("inspecting models in %s", o.ModelDir)
	models, err := Inspect(ctx, o.ModelDir)
	if err != nil {
		return nil, err
	}
	var reqs []byte
	if o.Requirements != "" {
		if reqs, err = os.ReadFile(o.Requirements); err != nil {
			return nil, fmt.Errorf("requirements: %w", err)
		}
	}
	for _, p := range o.Packages {
		if p == "" || strings.ContainsAny(p, " \t\r\n'\"\\$`") {
			return nil, fmt.Errorf("pip package %q: want one requirement specifier such as scikit-learn==1.5.2", p)
		}
	}
	pkgs := slices.Clone(o.Packages)
	if needsNumpy(models) && !mentions(string(reqs), pkgs, "numpy") {
		pkgs = append(pkgs, "numpy")
	}
	args, err := ServeArgs(o.ModelDir)
	if err != nil {
		return nil, err
	}
	ents, err := modelEntries(o.ModelDir)
	if err != nil {
		return nil, err
	}
	if err := emptyDir(o.Dir); err != nil {
		return nil, err
	}
	created := o.Created
	if created.IsZero() {
		created = time.Unix(0, 0)
	}

	opt.progress("writing build context %s", o.Dir)
	if err := copyTo(filepath.Join(o.Dir, "shoal"), bin, 0o755); err != nil {
		return nil, err
	}
	for _, e := range ents {
		dst := filepath.Join(o.Dir, filepath.FromSlash(strings.TrimSuffix(e.name, "/")))
		if e.src == "" {
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return nil, err
			}
			continue
		}
		if err := copyTo(dst, e.src, os.FileMode(e.mode)); err != nil {
			return nil, err
		}
	}
	if len(reqs) > 0 {
		if err := os.WriteFile(filepath.Join(o.Dir, "requirements.txt"), reqs, 0o644); err != nil {
			return nil, err
		}
	}
	df := Dockerfile(o.PythonBase, len(reqs) > 0, pkgs, args, Labels(models, o.Source, created))
	if err := os.WriteFile(filepath.Join(o.Dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(o.Dir, ".dockerignore"), []byte("Dockerfile\n.dockerignore\n"), 0o644); err != nil {
		return nil, err
	}
	return models, nil
}

// Dockerfile returns the Dockerfile Context writes: FROM base, pip install
// of requirements.txt (when withReqs) and pkgs, the shoal binary and the
// models, then Image's user, ports, labels, entrypoint and args.
func Dockerfile(base string, withReqs bool, pkgs []string, args []string, labels map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by shoal package: shoal serves the models in %s; the Python base\n", ModelRoot)
	b.WriteString("# image runs their custom code. Build it with: docker build -t NAME:TAG .\n")
	fmt.Fprintf(&b, "FROM %s\n", base)
	var pip []string
	if withReqs {
		b.WriteString("COPY requirements.txt /tmp/requirements.txt\n")
		pip = append(pip, "-r", "/tmp/requirements.txt")
	}
	for _, p := range pkgs {
		pip = append(pip, shellWord(p))
	}
	if len(pip) > 0 {
		fmt.Fprintf(&b, "RUN pip install --no-cache-dir %s", strings.Join(pip, " "))
		if withReqs {
			b.WriteString(" && rm /tmp/requirements.txt")
		}
		b.WriteString("\n")
	}
	b.WriteString("# The python backend starts /usr/bin/python3 unless model.yaml sets python.\n")
	b.WriteString("RUN [ -e /usr/bin/python3 ] || ln -s \"$(command -v python3)\" /usr/bin/python3\n")
	fmt.Fprintf(&b, "COPY shoal %s\n", BinaryPath)
	fmt.Fprintf(&b, "COPY models %s\n", ModelRoot)
	b.WriteString("ENV HOME=/tmp\n")
	fmt.Fprintf(&b, "USER %s\n", User)
	fmt.Fprintf(&b, "EXPOSE %d %d\n", HTTPPort, GRPCPort)
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "LABEL %s=%s\n", k, strconv.Quote(labels[k]))
	}
	fmt.Fprintf(&b, "ENTRYPOINT %s\n", execForm(BinaryPath, "serve"))
	fmt.Fprintf(&b, "CMD %s\n", execForm(args...))
	return b.String()
}

// shellWord quotes a pip requirement for the shell of a RUN line when it
// holds anything but letters, digits and ._-= ("numpy<2" would redirect).
// Requirements never hold a single quote (Context refuses them).
func shellWord(s string) string {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-=", r)) {
			return "'" + s + "'"
		}
	}
	return s
}

// execForm writes args as a Dockerfile exec-form JSON array.
func execForm(args ...string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = strconv.Quote(a)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func needsNumpy(models []Model) bool {
	for _, m := range models {
		if m.Format == "python" {
			return true
		}
	}
	return false
}

// mentions reports whether a requirements file or pkgs name the package
// pkg (before any version specifier).
func mentions(reqs string, pkgs []string, pkg string) bool {
	lines := append(strings.Split(reqs, "\n"), pkgs...)
	for _, l := range lines {
		l = strings.TrimSpace(strings.ToLower(l))
		if i := strings.IndexAny(l, "<>=!~[;# "); i >= 0 {
			l = l[:i]
		}
		if l == pkg {
			return true
		}
	}
	return false
}

// emptyDir creates dir, or checks that it exists and is empty.
func emptyDir(dir string) error {
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("build context %s: %w", dir, err)
	}
	if len(names) > 0 {
		return fmt.Errorf("%w: %s", ErrContextDirNotEmpty, dir)
	}
	return nil
}

// copyTo copies the file src to a new file dst with mode.
func copyTo(dst, src string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
