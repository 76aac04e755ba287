#!/usr/bin/python3
"""Generate the benchmark model of bench/batch: an XGBoost regressor of 500
trees of depth up to 12 on 32 synthetic features. It is a model where
batching pays in the backend: its nodes take tens of MB, more than the
caches, and the tree backend walks each tree for up to 64 rows of a batch
while it is in cache, where one row alone misses at nearly every node.

Run with Debian's python3-xgboost (1.7.4) and python3-numpy:

    /usr/bin/python3 gen.py OUT_DIR

It writes OUT_DIR/model.json and OUT_DIR/row.json (one request body of one
row). The seed is fixed, so the model is the same every run.
"""

import json
import sys

import numpy as np
import xgboost as xgb

out = sys.argv[1]
rng = np.random.default_rng(42)
X = rng.normal(size=(20000, 32)).astype(np.float32)
y = X[:, 0] * X[:, 1] + np.sin(X[:, 2] * 3) + X[:, 3:8].sum(axis=1) + rng.normal(scale=0.1, size=20000)
booster = xgb.train(
    {"objective": "reg:squarederror", "max_depth": 12, "min_child_weight": 0.1, "eta": 0.05, "seed": 1, "nthread": 2},
    xgb.DMatrix(X, label=y),
    num_boost_round=500,
)
booster.save_model(f"{out}/model.json")
row = [float(v) for v in X[0]]
with open(f"{out}/row.json", "w") as f:
    json.dump({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 32], "data": row}]}, f)
