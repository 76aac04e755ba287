#!/usr/bin/python3
"""Train the example iris classifier served by shoal's embedded default.

Run from the repository root with Debian's python3-xgboost (1.7.4),
python3-sklearn and python3-numpy:

    /usr/bin/python3 examples/train_iris_xgb.py

It writes examples/models/iris/1/model.json (an XGBoost multi:softprob
model, 15 rounds of depth-3 trees) and expected.json beside it: a few rows
and the class probabilities Booster.predict gives for them, which the Go
tests of internal/backend/xgboost check the native backend against.
"""

import json
import os

import numpy as np
import xgboost as xgb
from sklearn.datasets import load_iris

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models", "iris", "1")


def main():
    iris = load_iris()
    X, y = iris.data.astype(np.float32), iris.target
    params = {"objective": "multi:softprob", "num_class": 3, "max_depth": 3,
              "eta": 0.3, "seed": 0, "nthread": 1}
    bst = xgb.train(params, xgb.DMatrix(X, label=y), num_boost_round=15)
    os.makedirs(OUT, exist_ok=True)
    bst.save_model(os.path.join(OUT, "model.json"))

    rows = np.array([
        [5.1, 3.5, 1.4, 0.2],  # setosa
        [6.2, 2.9, 4.3, 1.3],  # versicolor
        [6.3, 3.3, 6.0, 2.5],  # virginica
        [5.9, 3.0, 5.1, 1.8],  # virginica, near the border
        [6.0, np.nan, 4.5, np.nan],  # missing values
    ], dtype=np.float32)
    probs = bst.predict(xgb.DMatrix(rows))
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({
            "inputs": [[None if np.isnan(v) else float(v) for v in r] for r in rows],
            "probabilities": probs.astype(float).tolist(),
            "labels": [iris.target_names[i] for i in probs.argmax(axis=1)],
        }, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
