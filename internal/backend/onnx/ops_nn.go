package onnx

// nnOps are the neural-network operators: activations, convolutions,
// pooling, normalizations, resizing, padding and the other tensor
// transforms models built with deep-learning frameworks use.
func nnOps() []Op {
	var ops []Op
	for _, l := range [][]Op{activationOps(), convOps(), poolOps(), normOps(), tensorOps(), resizeOps(), lossOps(), attentionOps(), extraOps(), gridOps(), detectOps(), rnnOps()} {
		ops = append(ops, l...)
	}
	return ops
}
