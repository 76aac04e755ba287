//go:build race

package onnx

// raceEnabled is true under the race detector, whose sync.Pool drops items
// at random (so pooled buffers, such as internal/gemm's, are reallocated).
const raceEnabled = true
