// Package backend defines the one small interface every model format
// implements (native XGBoost, LightGBM and ONNX; the python and http
// backends), and the configuration a loader receives. It holds no format
// code itself and no registry: the server is given a Loaders map.
package backend

import (
	"context"
	"errors"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// ErrInvalidInput is wrapped by Model.Infer when the inputs do not fit the
// model (wrong count, type, shape or width). Servers map it to a client error.
var ErrInvalidInput = errors.New("backend: invalid input")

// ErrUnavailable is wrapped by Model.Infer when the model cannot answer now
// but may later (a worker restarting, an upstream down). Servers map it to 503.
var ErrUnavailable = errors.New("backend: unavailable")

// Model is a loaded model version. Implementations must be safe for
// concurrent use by many goroutines.
type Model interface {
	// Signature describes the inputs and outputs. It must not change after
	// load and must not be modified by callers.
	Signature() Signature
	// Infer runs the model on inputs (in any order, matched by name; the server
	// has checked names, and shapes against Signature) and returns every output in
	// Signature order. It returns an error wrapping ErrInvalidInput when the
	// inputs do not fit. It must honour ctx cancellation where it can block.
	Infer(ctx context.Context, inputs []*tensor.Tensor) ([]*tensor.Tensor, error)
}

// Closer is implemented by models that hold resources (processes, files).
// The server calls Close once, after the last in-flight Infer returned.
type Closer interface {
	Close() error
}

// TensorSpec describes one input or output. A dimension of -1 is dynamic
// (typically the batch dimension). A nil Shape means unknown rank.
type TensorSpec struct {
	Name  string
	DType tensor.DType
	Shape []int64
}

// Signature lists a model's inputs and outputs.
type Signature struct {
	Inputs  []TensorSpec
	Outputs []TensorSpec
}

// Config is what a loader is given for one model version, parsed from the
// model repository (model.yaml) with defaults filled in.
type Config struct {
	// Name and Version identify the model version being loaded.
	Name    string
	Version int64
	// Dir is the version directory; Artifact is the model file inside it
	// (an absolute path), empty when the format takes a directory.
	Dir      string
	Artifact string
	// Format is the backend name ("xgboost", "lightgbm", "onnx", ...).
	Format string
	// Inputs and Outputs, when set in model.yaml, override or name the
	// tensors the format would infer. Loaders may ignore what they cannot
	// honour, but must reject contradictions with a clear error.
	Inputs  []TensorSpec
	Outputs []TensorSpec
	// Labels, when set, name the classes of a classifier in index order.
	Labels []string
	// Parameters holds format-specific settings from model.yaml.
	Parameters map[string]string
}

// Loader loads one model version. It must not keep ctx past its return.
type Loader func(ctx context.Context, cfg Config) (Model, error)

// FindInput returns the input named name. It is a helper for Model
// implementations; the server has already checked names against Signature.
func FindInput(inputs []*tensor.Tensor, name string) (t *tensor.Tensor, ok bool) {
	for _, in := range inputs {
		if in.Name == name {
			return in, true
		}
	}
	return nil, false
}

// Batcher is implemented by models that can serve the rows of several
// requests in one Infer call. A server that batches across requests (see
// package batch) asks once, after load; a model that does not implement
// Batcher, or reports the zero Batching, is never batched.
//
// Implementations must only declare what holds for every input they accept:
// the server relies on it to give each request, bit for bit, the outputs it
// would have got alone.
type Batcher interface {
	// Batching reports how the model may be batched. It must not change
	// after load.
	Batching() Batching
}

// Batching is what a model declares about batching. The zero value means
// the model cannot be batched.
type Batching struct {
	// Concat means: every input and output has the batch on dimension 0,
	// and row i of every output depends only on row i of the inputs, with
	// the same arithmetic whatever the other rows and their count. Requests
	// may then be concatenated on dimension 0 and the outputs split back.
	Concat bool
	// Split means, in addition to Concat, that any row count from 1 up is
	// valid, so that a request larger than the server's batch limit may be
	// cut into several Infer calls on dimension 0. Without it such a request
	// runs alone, whole.
	Split bool
}
