#!/usr/bin/python3
"""Generate the XGBoost fixtures of internal/backend/xgboost.

Run from this directory with Debian's python3-xgboost (1.7.4),
python3-sklearn and python3-numpy:

    /usr/bin/python3 gen.py

For every case it trains a small model with a fixed seed, saves it as
<case>.json with Booster.save_model, and writes <case>.expected.json with
the rows it was asked about (null stands for a missing value, NaN) and what
Booster.predict returned for them, both transformed ("predict") and as raw
margins ("margin"). The Go tests read these files; they never run Python.
"""

import json

import numpy as np
import xgboost as xgb
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

ROUNDS = 8


def with_missing(X, rng, frac):
    X = X.astype(np.float32).copy()
    X[rng.random(X.shape) < frac] = np.nan
    return X


def iris(rng):
    X, y = load_iris(return_X_y=True)
    return with_missing(X, rng, 0.1), y.astype(np.float32)


def cancer(rng):
    X, y = load_breast_cancer(return_X_y=True)
    X = X[:, :10]  # fewer features keep the files small
    return with_missing(X, rng, 0.1), y.astype(np.float32)


def diabetes(rng):
    X, y = load_diabetes(return_X_y=True)
    return with_missing(X, rng, 0.1), y.astype(np.float32)


def positive(rng, kind):
    X = rng.normal(size=(400, 6)).astype(np.float32)
    mu = np.exp(0.3 * X[:, 0] - 0.5 * X[:, 1] + 0.2 * X[:, 2] + 1.0)
    if kind == "poisson":
        y = rng.poisson(mu)
    elif kind == "gamma":
        y = rng.gamma(2.0, mu / 2.0)
    elif kind == "cox":  # survival times, negative when censored
        y = rng.exponential(mu) * np.where(rng.random(len(mu)) < 0.2, -1, 1)
    else:  # tweedie: compound Poisson-gamma with exact zeros
        n = rng.poisson(mu / 2.0)
        y = np.array([rng.gamma(2.0, 1.0, size=k).sum() for k in n])
    return with_missing(X, rng, 0.1), y.astype(np.float32)


def ranking(rng):
    X = rng.normal(size=(200, 5)).astype(np.float32)
    y = np.clip(np.round(X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.5, size=200)) + 2, 0, 4)
    return with_missing(X, rng, 0.1), y.astype(np.float32), [20] * 10


TREE = {"max_depth": 3, "eta": 0.3}
DART = {"booster": "dart", "max_depth": 3, "eta": 0.3, "rate_drop": 0.3,
        "skip_drop": 0.0, "sample_type": "uniform", "normalize_type": "tree"}
LINEAR = {"booster": "gblinear", "eta": 0.5}

CASES = [
    # name, booster params, objective params, data
    ("gbtree_binary_logistic", TREE, {"objective": "binary:logistic"}, cancer),
    ("gbtree_binary_logistic_base", TREE, {"objective": "binary:logistic", "base_score": 0.3}, cancer),
    ("gbtree_binary_logitraw", TREE, {"objective": "binary:logitraw"}, cancer),
    ("gbtree_reg_logistic", TREE, {"objective": "reg:logistic"}, cancer),
    ("gbtree_multi_softprob", TREE, {"objective": "multi:softprob", "num_class": 3}, iris),
    ("gbtree_multi_softmax", TREE, {"objective": "multi:softmax", "num_class": 3}, iris),
    ("gbtree_multi_softprob_parallel", dict(TREE, num_parallel_tree=2, subsample=0.8),
     {"objective": "multi:softprob", "num_class": 3}, iris),
    ("gbtree_reg_squarederror", TREE, {"objective": "reg:squarederror"}, diabetes),
    ("gbtree_reg_squarederror_base", TREE, {"objective": "reg:squarederror", "base_score": 150.0}, diabetes),
    ("gbtree_reg_pseudohubererror", TREE, {"objective": "reg:pseudohubererror", "huber_slope": 50.0}, diabetes),
    ("gbtree_reg_absoluteerror", TREE, {"objective": "reg:absoluteerror"}, diabetes),
    ("gbtree_count_poisson", TREE, {"objective": "count:poisson"}, lambda r: positive(r, "poisson")),
    ("gbtree_count_poisson_base", TREE, {"objective": "count:poisson", "base_score": 2.5},
     lambda r: positive(r, "poisson")),
    ("gbtree_reg_gamma", TREE, {"objective": "reg:gamma"}, lambda r: positive(r, "gamma")),
    ("gbtree_reg_tweedie", TREE, {"objective": "reg:tweedie", "tweedie_variance_power": 1.5},
     lambda r: positive(r, "tweedie")),
    ("gbtree_reg_squaredlogerror", TREE, {"objective": "reg:squaredlogerror"}, lambda r: positive(r, "gamma")),
    ("gbtree_survival_cox", TREE, {"objective": "survival:cox"}, lambda r: positive(r, "cox")),
    ("gbtree_rank_pairwise", TREE, {"objective": "rank:pairwise"}, ranking),
    ("dart_binary_logistic", DART, {"objective": "binary:logistic"}, cancer),
    ("dart_multi_softprob", DART, {"objective": "multi:softprob", "num_class": 3}, iris),
    ("dart_reg_squarederror", DART, {"objective": "reg:squarederror"}, diabetes),
    ("gblinear_binary_logistic", LINEAR, {"objective": "binary:logistic"}, cancer),
    ("gblinear_binary_logistic_base", LINEAR, {"objective": "binary:logistic", "base_score": 0.2}, cancer),
    ("gblinear_multi_softprob", LINEAR, {"objective": "multi:softprob", "num_class": 3}, iris),
    ("gblinear_reg_squarederror", LINEAR, {"objective": "reg:squarederror"}, diabetes),
    ("gblinear_count_poisson", LINEAR, {"objective": "count:poisson"}, lambda r: positive(r, "poisson")),
]


def nulls(a):
    """Nested lists with NaN as None, which JSON can carry."""
    return [[None if np.isnan(v) else float(v) for v in row] for row in a]


def main():
    for i, (name, booster, objective, data) in enumerate(CASES):
        rng = np.random.default_rng(1000 + i)
        got = data(rng)
        X, y = got[0], got[1]
        d = xgb.DMatrix(X, label=y)
        if len(got) == 3:
            d.set_group(got[2])
        params = dict(booster, **objective, seed=i, nthread=1)
        bst = xgb.train(params, d, num_boost_round=ROUNDS)
        bst.save_model(name + ".json")

        rows = np.concatenate([X[:16], with_missing(rng.normal(size=(4, X.shape[1])), rng, 0.3)])
        rows[16] = np.nan  # one row with every feature missing
        dm = xgb.DMatrix(rows)
        pred = bst.predict(dm)
        margin = bst.predict(dm, output_margin=True)
        with open(name + ".expected.json", "w") as f:
            json.dump({
                "objective": objective["objective"],
                "inputs": nulls(rows),
                "predict": pred.astype(float).tolist(),
                "margin": margin.astype(float).tolist(),
            }, f)
            f.write("\n")


if __name__ == "__main__":
    main()
