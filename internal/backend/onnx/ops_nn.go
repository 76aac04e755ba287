package onnx

// nnOps are the neural-network operators: convolutions, pooling,
// normalizations, activations, resizing and padding.
func nnOps() []Op {
	return nil
}
