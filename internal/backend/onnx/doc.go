// Package onnx is shoal's native ONNX backend: it loads an .onnx model
// (ai.onnx and ai.onnx.ml operator sets), checks and plans it once, and runs
// it in pure Go with no per-inference allocations in steady state.
//
// Loading decodes the protobuf (onnxpb), checks the graph (a DAG, names
// unique, every input defined, initializer sizes bounded), resolves every
// node's operator against the model's opset imports in an OpSet (see
// op.go for the operator API), folds constant nodes, and computes an
// execution plan: a topological order and buffer slots shared by values
// whose lifetimes do not overlap. Running executes the plan on an execution
// state taken from a pool, so that concurrent Infer calls never share
// buffers.
//
// Control flow (If, Loop, Scan) and the other operators with graph
// attributes run planned subgraphs that read outer-scope values (see
// subgraph.go); sequences and optionals are Values too. It does not train
// (beyond single optimizer steps), does not run model-local ONNX
// functions, and does not use accelerators.
package onnx
