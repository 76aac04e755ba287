#!/usr/bin/python3
"""Generate the model of the dynamic batching benchmark: an ONNX MLP of
64 -> 512 -> 512 -> 10 (MatMul + Add, ReLU, Softmax, as skl2onnx writes an
MLPClassifier), the model "where batching pays" of the batching issue: one
row costs a matrix-vector product that reads every weight, a batch of rows
one matrix product that reads them once.

Run with Debian's python3-onnx and python3-numpy:

    /usr/bin/python3 gen_mlp.py mlp.onnx            # the model (committed)
    /usr/bin/python3 gen_mlp.py --hidden 2048 OUT.onnx  # a wider one: 64 -> 2048 -> 2048 -> 10
    /usr/bin/python3 gen_mlp.py --bodies OUT.jsonl  # 4096 request bodies

The seeds are fixed, so both are the same every run. Each body is one
distinct row of 64 standard normal features.
"""

import json
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SIZES = [64, 512, 512, 10]


def model(hidden=512):
    SIZES[1:3] = [hidden, hidden]
    rng = np.random.default_rng(7)
    inits, nodes = [], []
    prev = "input"
    for i, (fan_in, fan_out) in enumerate(zip(SIZES, SIZES[1:])):
        w = (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        b = (rng.standard_normal(fan_out) * 0.01).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"W{i}"), numpy_helper.from_array(b, f"B{i}")]
        nodes += [helper.make_node("MatMul", [prev, f"W{i}"], [f"mm{i}"]),
                  helper.make_node("Add", [f"mm{i}", f"B{i}"], [f"z{i}"])]
        prev = f"z{i}"
        if i < len(SIZES) - 2:
            nodes.append(helper.make_node("Relu", [prev], [f"a{i}"]))
            prev = f"a{i}"
    nodes.append(helper.make_node("Softmax", [prev], ["probabilities"], axis=1))
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", SIZES[0]])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", SIZES[-1]])],
        inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="shoal bench/batch")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def bodies(path):
    rng = np.random.default_rng(42)
    x = rng.standard_normal((4096, SIZES[0])).astype(np.float32)
    with open(path, "w") as f:
        for row in x:
            body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, SIZES[0]],
                                "data": [float(v) for v in row]}]}
            f.write(json.dumps(body) + "\n")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--bodies":
        bodies(sys.argv[2])
    elif len(sys.argv) == 2:
        onnx.save(model(), sys.argv[1])
    elif len(sys.argv) == 4 and sys.argv[1] == "--hidden" and sys.argv[2].isdigit() and int(sys.argv[2]) > 0:
        onnx.save(model(int(sys.argv[2])), sys.argv[3])
    else:
        sys.exit(__doc__)
