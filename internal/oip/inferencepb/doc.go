// Package inferencepb holds the Go code generated from grpc_service.proto:
// the messages and the GRPCInferenceService client and server stubs of the
// Open Inference Protocol v2 (package "inference" on the wire, as published by
// KServe and Triton), including the model repository extension.
//
// It holds generated code only; conversions between these messages and shoal
// tensors live in package oip, and the gRPC server lives elsewhere. Do not
// edit the *.pb.go files: change grpc_service.proto and run go generate.
package inferencepb

//go:generate bash generate.sh
