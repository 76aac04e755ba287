package pack

import (
	"debug/elf"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// archOf maps ELF machines to OCI architectures.
var archOf = map[elf.Machine]string{
	elf.EM_X86_64:  "amd64",
	elf.EM_AARCH64: "arm64",
	elf.EM_386:     "386",
	elf.EM_ARM:     "arm",
	elf.EM_PPC64:   "ppc64le",
	elf.EM_S390:    "s390x",
	elf.EM_RISCV:   "riscv64",
}

// CheckBinary checks that path is a statically linked linux executable and
// returns the platform it runs on; Image and Context call it, and callers
// may call it early to fail fast. A dynamically linked binary names an
// interpreter (the dynamic loader) in a PT_INTERP program header; scratch
// has none, so it would fail to start with a baffling "no such file". It
// returns an error wrapping ErrDynamicBinary or ErrNotLinuxBinary.
func CheckBinary(path string) (v1.Platform, error) {
	f, err := elf.Open(path)
	if err != nil {
		return v1.Platform{}, fmt.Errorf("%w: %s: %w (build one with CGO_ENABLED=0 GOOS=linux go build ./cmd/shoal)", ErrNotLinuxBinary, path, err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return v1.Platform{}, fmt.Errorf("%w: %s is an ELF %s, not an executable", ErrNotLinuxBinary, path, f.Type)
	}
	if f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
		return v1.Platform{}, fmt.Errorf("%w: %s is built for %s", ErrNotLinuxBinary, path, f.OSABI)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return v1.Platform{}, fmt.Errorf("%w: %s needs a dynamic loader, which a scratch image lacks: build a static one with CGO_ENABLED=0 go build ./cmd/shoal and pass it with -binary", ErrDynamicBinary, path)
		}
	}
	arch, ok := archOf[f.Machine]
	if !ok {
		return v1.Platform{}, fmt.Errorf("%w: %s is for machine %s, which pack does not know", ErrNotLinuxBinary, path, f.Machine)
	}
	p := v1.Platform{OS: "linux", Architecture: arch}
	if arch == "arm" {
		p.Variant = "v7"
	}
	if arch == "ppc64le" && f.ByteOrder.String() != "LittleEndian" {
		p.Architecture = "ppc64"
	}
	return p, nil
}
