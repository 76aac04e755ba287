package control

import (
	"context"
	"fmt"

	"github.com/shoal-ml/shoal/api/v1alpha1"
)

// ResolveModel returns the model URI a new revision runs, given the one a
// user applied: for an oci:// reference by tag, the same reference pinned
// to the digest the tag names now (oci://HOST/REPO:TAG@sha256:HEX); any
// other URI as it is. The control plane calls it when a ModelDeployment is
// applied, before the revision is computed, so a revision is immutable and
// digest-addressed: a tag moved later makes a new revision only when the
// deployment is applied again. internal/registry's Client.Resolve is one.
type ResolveModel func(ctx context.Context, uri string) (string, error)

// PinModel sets d's model URI to what resolve returns for it. A nil
// resolve changes nothing. Its errors wrap ErrBadRequest: the reference
// the user gave cannot be resolved.
func PinModel(ctx context.Context, resolve ResolveModel, d *v1alpha1.ModelDeployment) error {
	if resolve == nil {
		return nil
	}
	uri, err := resolve(ctx, d.Spec.Model.URI)
	if err != nil {
		return fmt.Errorf("%w: %s: spec.model.uri: %v", ErrBadRequest, d.Metadata.Name, err)
	}
	d.Spec.Model.URI = uri
	return nil
}
