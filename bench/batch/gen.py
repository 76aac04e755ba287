#!/usr/bin/python3
"""Generate the benchmark model of bench/batch: an XGBoost regressor of 400
trees of depth 8 on 32 synthetic features, the "tree ensemble of a few
hundred trees" of the batching issue. docs/batching.md says what batching
buys on it and what it does not.

Run with Debian's python3-xgboost (1.7.4) and python3-numpy:

    /usr/bin/python3 gen.py OUT_DIR

It writes OUT_DIR/bodies.jsonl (4096 OIP request bodies of one distinct
row each, from the training data) first, then OUT_DIR/model.json. The seed
is fixed, so both are the same every run. With --bodies-only it writes
only the bodies (seconds, where training takes minutes).
"""

import json
import sys

import numpy as np
import xgboost as xgb

out = sys.argv[1]
rng = np.random.default_rng(42)
X = rng.normal(size=(20000, 32)).astype(np.float32)
y = X[:, 0] * X[:, 1] + np.sin(X[:, 2] * 3) + X[:, 3:8].sum(axis=1) + rng.normal(scale=0.1, size=20000)
with open(f"{out}/bodies.jsonl", "w") as f:
    for row in X[:4096]:
        body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 32], "data": [float(v) for v in row]}]}
        f.write(json.dumps(body) + "\n")
if "--bodies-only" in sys.argv:
    sys.exit(0)
booster = xgb.train(
    {"objective": "reg:squarederror", "max_depth": 8, "eta": 0.05, "seed": 1, "nthread": 1},
    xgb.DMatrix(X, label=y),
    num_boost_round=400,
)
booster.save_model(f"{out}/model.json")
