package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/registry"
	"github.com/shoal-ml/shoal/internal/serve"
)

func runPush(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	pos, err := parseTransfer("push", "MODEL_DIR|MODEL_REPOSITORY oci://HOST/REPOSITORY[:TAG]",
		"Loads the model (or every model of the repository) to learn its format and\n"+
			"tensor signature, packs it as an OCI artifact and pushes it. Prints the\n"+
			"manifest digest. Credentials come from the Docker config file.",
		1, args, stderr, nil)
	if err != nil {
		return err
	}
	src, err := registry.Scan(pos[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "loading %s to describe %v\n", src.Dir, src.Models)
	cfg, err := describeModels(ctx, src)
	if err != nil {
		return err
	}
	start := time.Now()
	a, err := registry.Build(src, cfg, "")
	if err != nil {
		return err
	}
	defer a.Close()
	fmt.Fprintf(stderr, "packed in %v; pushing to %s\n", time.Since(start).Round(time.Millisecond), pos[1])
	quarter := int64(0) // of the layer reported so far
	c := &registry.Client{Progress: func(sent, total int64) {
		if total < 8<<20 {
			return // small layers upload at once
		}
		if q := sent * 4 / total; q > quarter {
			quarter = q
			fmt.Fprintf(stderr, "uploaded %.1f of %.1f MiB\n", float64(sent)/(1<<20), float64(total)/(1<<20))
		}
	}}
	d, err := c.Push(ctx, a, pos[1])
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, d)
	return nil
}

// describeModels loads src's models with the backends built into this
// binary and returns the artifact config: each model's format and the
// signature of every version its version policy serves.
func describeModels(ctx context.Context, src registry.Source) (registry.Config, error) {
	log := slog.New(slog.DiscardHandler)
	s, err := serve.New(serve.Config{Repository: src.Repository, Loaders: Loaders(log), Logger: log})
	if err != nil {
		return registry.Config{}, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		s.Close(cctx)
	}()
	var cfg registry.Config
	for _, name := range src.Models {
		if err := s.Load(ctx, name); err != nil {
			return registry.Config{}, err
		}
		md, err := s.ModelMetadata(name, "")
		if err != nil {
			return registry.Config{}, err
		}
		m := registry.Model{Name: name, Format: md.Platform}
		for _, v := range md.Versions {
			vmd, err := s.ModelMetadata(name, v)
			if err != nil {
				return registry.Config{}, err
			}
			m.Versions = append(m.Versions, registry.Version{Version: v, Inputs: tensors(vmd.Inputs), Outputs: tensors(vmd.Outputs)})
		}
		cfg.Models = append(cfg.Models, m)
	}
	slices.SortFunc(cfg.Models, func(a, b registry.Model) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return cfg, nil
}

func tensors(ts []backend.TensorSpec) []registry.Tensor {
	out := []registry.Tensor{}
	for _, t := range ts {
		out = append(out, registry.Tensor{Name: t.Name, Datatype: t.DType.String(), Shape: t.Shape})
	}
	return out
}

// parseTransfer parses the arguments of shoal push or pull (name): the
// flags that define adds (nil: none), before or after exactly two
// positional arguments, the ref-th of which (0 or 1) is an oci://
// reference. synopsis and about (a paragraph) make the -h text.
func parseTransfer(name, synopsis, about string, ref int, args []string, stderr io.Writer, define func(*flag.FlagSet)) ([]string, error) {
	fl := flag.NewFlagSet(name, flag.ContinueOnError)
	fl.SetOutput(stderr)
	if define != nil {
		define(fl)
	}
	fl.Usage = func() {
		fmt.Fprintf(stderr, "Usage: shoal %s %s\n\n%s\nSee docs/registry.md.\n\nFlags:\n", name, synopsis, about)
		fl.PrintDefaults()
	}
	pos, err := parseInterspersed(fl, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != 2 {
		return nil, usageError{fmt.Errorf("usage: shoal %s %s", name, synopsis)}
	}
	if _, err := registry.ParseReference(pos[ref]); err != nil {
		return nil, usageError{err}
	}
	return pos, nil
}

// parseInterspersed parses fl from args, allowing flags before and after
// the positional arguments, which it returns.
func parseInterspersed(fl *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fl.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err}
		}
		if fl.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fl.Arg(0))
		args = fl.Args()[1:]
	}
}
