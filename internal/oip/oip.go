// Package oip implements the wire formats of the Open Inference Protocol v2
// (the KServe/Triton protocol): the REST JSON body, the binary tensor data
// extension, the KServe V1 "instances" body, and conversions to and from the
// generated gRPC messages (package inferencepb). It turns bytes into
// InferRequest values and InferResponse values into bytes; it does not route,
// run models or know about HTTP status codes.
package oip

import (
	"errors"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// ErrBadRequest is wrapped by every decoder error caused by the client's
// input. Boundaries map it to HTTP 400 or gRPC INVALID_ARGUMENT.
var ErrBadRequest = errors.New("oip: bad request")

// Extensions lists the protocol extensions shoal implements, as advertised in
// server metadata.
var Extensions = []string{"binary_tensor_data", "model_repository", "parameters", "kserve_v1"}

// HeaderContentLength is the HTTP header of the binary tensor data extension
// that gives the length of the JSON part of a body.
const HeaderContentLength = "Inference-Header-Content-Length"

// InferRequest is one inference request, decoded from any protocol.
type InferRequest struct {
	// ModelName and ModelVersion select the model; an empty version means
	// the model's default version.
	ModelName    string
	ModelVersion string
	// ID is echoed in the response.
	ID string
	// Parameters are the request-level parameters (values are bool, string,
	// float64 from JSON, or int64/uint64/float64 from gRPC).
	Parameters map[string]any
	Inputs     []*tensor.Tensor
	// Outputs lists the requested outputs; empty means all outputs.
	Outputs []RequestedOutput
	// BinaryOutput asks for every output in binary form (the request
	// parameter binary_data_output).
	BinaryOutput bool
}

// RequestedOutput names one output the client wants.
type RequestedOutput struct {
	Name string
	// Binary asks for the output in binary form (REST only).
	Binary bool
	// Parameters are the output's parameters as sent.
	Parameters map[string]any
}

// InferResponse is the result of one inference request.
type InferResponse struct {
	ModelName    string
	ModelVersion string
	ID           string
	Parameters   map[string]any
	Outputs      []*tensor.Tensor
	// Binary marks, per output, those to encode in binary form (REST).
	// Nil means none.
	Binary []bool
}
