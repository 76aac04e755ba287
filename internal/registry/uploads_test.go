package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestUploads drives the blob upload protocol by hand: chunked, monolithic,
// a wrong digest, an out-of-order chunk and an unknown session.
func TestUploads(t *testing.T) {
	host, dir := newRegistry(t, nil)
	base := "http://" + host
	do := func(method, url string, body []byte, hdr ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	blob := bytes.Repeat([]byte("model weights "), 1000)
	sum := sha256.Sum256(blob)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	stored := filepath.Join(dir, "blobs", "sha256", hex.EncodeToString(sum[:]))

	// Chunked: POST, two PATCHes, PUT with the digest.
	resp := do("POST", base+"/v2/m/blobs/uploads/", nil)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != 202 || !strings.HasPrefix(loc, "/v2/m/blobs/uploads/") {
		t.Fatalf("POST = %d Location %q", resp.StatusCode, loc)
	}
	if r := do("PATCH", base+loc, blob[:5000], "Content-Range", "0-4999"); r.StatusCode != 202 || r.Header.Get("Range") != "0-4999" {
		t.Fatalf("PATCH = %d Range %q", r.StatusCode, r.Header.Get("Range"))
	}
	if r := do("PATCH", base+loc, blob[5000:6000], "Content-Range", "0-999"); r.StatusCode != 416 {
		t.Errorf("PATCH at the wrong offset = %d, want 416", r.StatusCode)
	}
	do("PATCH", base+loc, blob[5000:])
	if r := do("PUT", base+loc+"?digest="+digest, nil); r.StatusCode != 201 || r.Header.Get("Docker-Content-Digest") != digest {
		t.Fatalf("PUT = %d %v", r.StatusCode, r.Header)
	}
	if b, err := os.ReadFile(stored); err != nil || !bytes.Equal(b, blob) {
		t.Fatalf("stored blob: %v", err)
	}
	if r := do("GET", base+"/v2/m/blobs/"+digest, nil); r.StatusCode != 200 {
		t.Errorf("GET blob = %d", r.StatusCode)
	}
	os.Remove(stored)

	// Monolithic POST, then a wrong digest.
	if r := do("POST", base+"/v2/m/blobs/uploads/?digest="+digest, blob); r.StatusCode != 201 {
		t.Errorf("monolithic POST = %d", r.StatusCode)
	}
	os.Remove(stored)
	bad := "sha256:" + strings.Repeat("0", 64)
	if r := do("POST", base+"/v2/m/blobs/uploads/?digest="+bad, blob); r.StatusCode != 400 {
		t.Errorf("upload with a wrong digest = %d, want 400", r.StatusCode)
	}
	if _, err := os.Stat(filepath.Join(dir, "blobs", "sha256", strings.Repeat("0", 64))); err == nil {
		t.Error("a blob with a wrong digest was stored")
	}
	// A mount of a stored blob into another repository, and of a missing one.
	do("POST", base+"/v2/m/blobs/uploads/?digest="+digest, blob)
	if r := do("POST", base+"/v2/other/blobs/uploads/?mount="+digest+"&from=m", nil); r.StatusCode != 201 {
		t.Errorf("mount of a stored blob = %d, want 201", r.StatusCode)
	}
	if r := do("HEAD", base+"/v2/other/blobs/"+digest, nil); r.StatusCode != 200 {
		t.Errorf("HEAD of the mounted blob = %d", r.StatusCode)
	}
	r := do("POST", base+"/v2/other/blobs/uploads/?mount="+bad+"&from=m", nil)
	if r.StatusCode != 202 {
		t.Fatalf("mount of a missing blob = %d, want 202 (an upload)", r.StatusCode)
	}
	do("DELETE", base+r.Header.Get("Location"), nil)
	if r := do("PATCH", base+"/v2/m/blobs/uploads/nope", blob); r.StatusCode != 404 {
		t.Errorf("PATCH of an unknown upload = %d, want 404", r.StatusCode)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "uploads")); len(left) != 0 {
		t.Errorf("finished uploads left files: %v", left)
	}
}

// TestManifestLimitsAndJournal: an oversized manifest is refused, and a
// journal whose last line a crash cut short still opens.
func TestManifestLimitsAndJournal(t *testing.T) {
	host, dir := newRegistry(t, nil)
	big := bytes.Repeat([]byte(" "), maxConfigBytes+1)
	req, _ := http.NewRequest("PUT", "http://"+host+"/v2/m/manifests/1", bytes.NewReader(big))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("PUT of a %d-byte manifest = %d, want 413", len(big), resp.StatusCode)
	}

	c := client()
	digest := pushIris(t, c, "oci://"+host+"/models/iris:1")
	f, err := os.OpenFile(filepath.Join(dir, "manifests.jsonl"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"op":"put","repo":"models/iris","ref":"2","ty`)
	f.Close()
	reg, err := Open(dir, nil)
	if err != nil {
		t.Fatalf("Open with a cut journal: %v", err)
	}
	defer reg.Close()
	srv := httptest.NewServer(reg)
	defer srv.Close()
	host = strings.TrimPrefix(srv.URL, "http://")
	m, err := c.Get(context.Background(), "oci://"+host+"/models/iris:1")
	if err != nil || m.Digest != digest {
		t.Errorf("after reopening: %v, %v, want %s", m.Digest, err, digest)
	}
	// What is pushed after the repair is kept too.
	ref, _ := ParseReference("oci://" + host + "/models/iris:2")
	if err := remote.Tag(ref.Context().Tag("2"), &Artifact{Manifest: mustGet(t, c, "oci://"+host+"/models/iris:1")}); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	reg.Close()
	reg, err = Open(dir, nil)
	if err != nil {
		t.Fatalf("Open after the repair: %v", err)
	}
	defer reg.Close()
	srv = httptest.NewServer(reg)
	defer srv.Close()
	host = strings.TrimPrefix(srv.URL, "http://")
	for _, tag := range []string{"1", "2"} {
		if m, err := c.Get(context.Background(), "oci://"+host+"/models/iris:"+tag); err != nil || m.Digest != digest {
			t.Errorf("tag %s after two reopenings: %v, %v", tag, m.Digest, err)
		}
	}
}

func TestPushReportsProgress(t *testing.T) {
	host, _ := newRegistry(t, nil)
	src, err := Scan(irisDir(t))
	if err != nil {
		t.Fatal(err)
	}
	a, err := Build(src, irisConfig, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var last, total int64 // written by the progress goroutine, read after Push
	c := client()
	c.Progress = func(sent, size int64) { last, total = sent, size }
	if _, err := c.Push(context.Background(), a, "oci://"+host+"/models/iris:1"); err != nil {
		t.Fatal(err)
	}
	size, _ := a.layer.Size()
	if last != size || total != size {
		t.Errorf("last progress %d of %d, want %d of %d", last, total, size, size)
	}
}
