// Package registry stores model repositories as OCI artifacts: it packs a
// model directory into an artifact of shoal's own media types (a config
// blob that describes the models and one deterministic tar+gzip layer),
// pushes it to any OCI distribution registry, resolves a tag to the digest
// it names now, and pulls an artifact back into a directory, verifying every
// blob digest and refusing hostile archives (paths escaping the directory,
// links, special files, oversized content). Cache keeps pulled artifacts in
// content-addressed directories for `shoal serve oci://...`. Registry is an
// embeddable registry (go-containerregistry's pkg/registry) whose blobs and
// manifests live on disk, for `shoal up`.
//
// It does not load or check models (internal/serve does; the caller passes
// the models' description to Build), build runnable images (internal/pack)
// or authenticate clients of the embedded registry.
package registry
