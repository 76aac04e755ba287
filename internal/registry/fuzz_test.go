package registry

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// FuzzExtract feeds arbitrary archives to extract: it must never panic,
// and whatever it accepts or refuses, nothing appears outside the target
// directory and nothing inside it is other than a regular file or a
// directory.
func FuzzExtract(f *testing.F) {
	for _, entries := range [][]tarEntry{
		{{name: "iris/1/model.json", typ: tar.TypeReg, body: "{}"}},
		{{name: "iris/", typ: tar.TypeDir}, {name: "iris/1/", typ: tar.TypeDir}, {name: "iris/1/model.yaml", typ: tar.TypeReg, body: "format: xgboost\n"}},
		{{name: "../evil", typ: tar.TypeReg, body: "x"}},
		{{name: "iris", link: "/tmp", typ: tar.TypeSymlink}, {name: "iris/x", typ: tar.TypeReg, body: "x"}},
		{{name: "a", typ: tar.TypeReg, body: "1"}, {name: "a", typ: tar.TypeReg, body: "2"}},
		{{name: "a/b/../../../c", typ: tar.TypeReg, body: "x"}},
	} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range entries {
			h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644}
			if e.typ == tar.TypeReg {
				h.Size = int64(len(e.body))
			}
			tw.WriteHeader(h)
			tw.Write([]byte(e.body))
		}
		tw.Close()
		f.Add(buf.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "repo")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		extract(bytes.NewReader(data), dir, 1<<20)
		ents, err := os.ReadDir(parent)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 1 || ents[0].Name() != "repo" {
			t.Fatalf("extract wrote outside its directory: %v", ents)
		}
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			if !d.IsDir() && !d.Type().IsRegular() {
				t.Fatalf("extract made %s of type %v", p, d.Type())
			}
			return nil
		})
	})
}

// FuzzConfig decodes arbitrary config blobs as Pull does: no panic, and
// what decodes encodes and decodes to the same signature digest.
func FuzzConfig(f *testing.F) {
	b, _ := json.Marshal(irisConfig)
	f.Add(b)
	f.Add([]byte(`{"models":[]}`))
	f.Add([]byte(`{"models":[{"name":"x","versions":[{"inputs":[{"shape":[-1]}]}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Config
		if json.Unmarshal(data, &c) != nil {
			return
		}
		again, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var d Config
		if err := json.Unmarshal(again, &d); err != nil {
			t.Fatal(err)
		}
		if c.SignatureDigest() != d.SignatureDigest() {
			t.Fatalf("signature digest changed across a round trip: %s", again)
		}
		c.Annotations()
	})
}

// TestManifestGolden: the iris example's manifest, byte for byte (run
// with -update after a deliberate change of the artifact format).
func TestManifestGolden(t *testing.T) {
	src, err := Scan(irisDir(t))
	if err != nil {
		t.Fatal(err)
	}
	a, err := Build(src, irisConfig, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var got bytes.Buffer
	if err := json.Indent(&got, a.Manifest, "", "  "); err != nil {
		t.Fatal(err)
	}
	got.WriteString("\n")
	golden := filepath.Join("testdata", "iris-manifest.json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("manifest differs from %s (run go test -run TestManifestGolden -update after a deliberate change):\n%s", golden, got.Bytes())
	}
}
