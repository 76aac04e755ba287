package onnx

// reduceOps are the reductions over axes: ReduceSum, ReduceMean, ReduceMax,
// ReduceMin, ReduceProd, ReduceL1, ReduceL2, ReduceLogSum,
// ReduceLogSumExp, ReduceSumSquare, and ArgMin.
func reduceOps() []Op {
	return nil
}
