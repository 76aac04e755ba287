#!/usr/bin/env python3
"""Generate the scikit-learn fixtures of the native ONNX backend.

Trains a few scikit-learn estimators on the datasets bundled with
scikit-learn, writes each as an ONNX model built with onnx.helper from the
fitted parameters (there is no skl2onnx here: the graphs are what skl2onnx
emits, written by hand), and writes scikit-learn's own predictions beside
it as JSON: {"X": rows, "label": [...], "probabilities": [[...]]} (or
"predictions" for regressors). model_test.go checks that shoal reproduces
them.

Needs Debian's python3-onnx (1.12), python3-sklearn and python3-numpy. Run
from this directory with the system interpreter:

    /usr/bin/python3 gen.py
"""

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import (GradientBoostingClassifier,
                              RandomForestClassifier, RandomForestRegressor)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

OPSETS = [helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 3)]
ROWS = 40  # rows of predictions kept per fixture


def model(name, nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, name, inputs, outputs, list(initializers))
    m = helper.make_model(graph, opset_imports=OPSETS, producer_name="shoal gen.py")
    m.ir_version = 7
    onnx.checker.check_model(m)
    onnx.save(m, name + ".onnx")


def x_input(width):
    return helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", width])


def classifier_outputs(classes, zipmap=False):
    label = helper.make_tensor_value_info("label", TensorProto.INT64, ["N"])
    if zipmap:
        tp = onnx.TypeProto()
        m = tp.sequence_type.elem_type.map_type
        m.key_type = TensorProto.INT64
        m.value_type.tensor_type.elem_type = TensorProto.FLOAT
        prob = onnx.ValueInfoProto(name="probabilities", type=tp)
    else:
        prob = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes])
    return [label, prob]


def save_json(name, X, **outputs):
    doc = {"X": X.astype(np.float32).tolist()}
    for k, v in outputs.items():
        doc[k] = np.asarray(v).tolist()
    with open(name + ".json", "w") as f:
        json.dump(doc, f)


def sample(X):
    rng = np.random.RandomState(0)
    return X[rng.choice(len(X), ROWS, replace=False)].astype(np.float32)


def tree_nodes(estimators, scale, leaf_weights):
    """Flatten fitted sklearn trees into TreeEnsemble* attributes.

    leaf_weights(tree, leaf) returns [(column, weight)] for a leaf."""
    a = {k: [] for k in ("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values",
                         "nodes_modes", "nodes_truenodeids", "nodes_falsenodeids")}
    w = {"treeids": [], "nodeids": [], "ids": [], "weights": []}
    for t, est in enumerate(estimators):
        tr = est.tree_
        for i in range(tr.node_count):
            leaf = tr.children_left[i] == -1
            a["nodes_treeids"].append(t)
            a["nodes_nodeids"].append(i)
            a["nodes_featureids"].append(0 if leaf else int(tr.feature[i]))
            a["nodes_values"].append(0.0 if leaf else float(tr.threshold[i]))
            a["nodes_modes"].append("LEAF" if leaf else "BRANCH_LEQ")
            a["nodes_truenodeids"].append(0 if leaf else int(tr.children_left[i]))
            a["nodes_falsenodeids"].append(0 if leaf else int(tr.children_right[i]))
            if leaf:
                for col, weight in leaf_weights(tr, i):
                    w["treeids"].append(t)
                    w["nodeids"].append(i)
                    w["ids"].append(col)
                    w["weights"].append(weight * scale)
    # Thresholds as doubles (ai.onnx.ml opset 3), so that float32 inputs
    # compare with scikit-learn's double thresholds exactly.
    values = a.pop("nodes_values")
    a["nodes_values_as_tensor"] = numpy_helper.from_array(np.array(values, dtype=np.float64))
    return a, w


def logistic_regression():
    iris = load_iris()
    clf = LogisticRegression(max_iter=1000).fit(iris.data, iris.target)
    X = sample(iris.data)
    nodes = [
        helper.make_node("LinearClassifier", ["X"], ["label", "scores"], domain="ai.onnx.ml",
                         coefficients=clf.coef_.astype(np.float32).ravel().tolist(),
                         intercepts=clf.intercept_.astype(np.float32).tolist(),
                         classlabels_ints=clf.classes_.tolist(), multi_class=1,
                         post_transform="SOFTMAX"),
        helper.make_node("ZipMap", ["scores"], ["probabilities"], domain="ai.onnx.ml",
                         classlabels_int64s=clf.classes_.tolist()),
    ]
    model("logreg_iris", nodes, [x_input(4)], classifier_outputs(3, zipmap=True))
    save_json("logreg_iris", X, label=clf.predict(X), probabilities=clf.predict_proba(X))


def random_forest():
    iris = load_iris()
    clf = RandomForestClassifier(n_estimators=8, max_depth=5, random_state=0).fit(iris.data, iris.target)
    X = sample(iris.data)

    def weights(tr, i):
        v = tr.value[i][0]
        v = v / v.sum()
        return [(c, float(v[c])) for c in range(len(v))]

    a, w = tree_nodes(clf.estimators_, 1.0 / len(clf.estimators_), weights)
    node = helper.make_node("TreeEnsembleClassifier", ["X"], ["label", "probabilities"], domain="ai.onnx.ml",
                            classlabels_int64s=clf.classes_.tolist(), class_treeids=w["treeids"],
                            class_nodeids=w["nodeids"], class_ids=w["ids"], class_weights=w["weights"], **a)
    model("forest_iris", [node], [x_input(4)], classifier_outputs(3))
    save_json("forest_iris", X, label=clf.predict(X), probabilities=clf.predict_proba(X))


def random_forest_regressor():
    d = load_diabetes()
    reg = RandomForestRegressor(n_estimators=6, max_depth=4, random_state=0).fit(d.data, d.target)
    X = sample(d.data)
    a, w = tree_nodes(reg.estimators_, 1.0, lambda tr, i: [(0, float(tr.value[i][0][0]))])
    node = helper.make_node("TreeEnsembleRegressor", ["X"], ["predictions"], domain="ai.onnx.ml",
                            n_targets=1, aggregate_function="AVERAGE", target_treeids=w["treeids"],
                            target_nodeids=w["nodeids"], target_ids=w["ids"], target_weights=w["weights"], **a)
    out = helper.make_tensor_value_info("predictions", TensorProto.FLOAT, ["N", 1])
    model("forest_diabetes", [node], [x_input(10)], [out])
    save_json("forest_diabetes", X, predictions=reg.predict(X).reshape(-1, 1))


def gradient_boosting():
    bc = load_breast_cancer()
    clf = GradientBoostingClassifier(n_estimators=12, max_depth=3, random_state=0).fit(bc.data, bc.target)
    X = sample(bc.data)
    a, w = tree_nodes(clf.estimators_[:, 0], clf.learning_rate, lambda tr, i: [(0, float(tr.value[i][0][0]))])
    base = float(clf._raw_predict_init(X[:1].astype(np.float64))[0, 0])
    node = helper.make_node("TreeEnsembleClassifier", ["X"], ["label", "probabilities"], domain="ai.onnx.ml",
                            classlabels_int64s=clf.classes_.tolist(), class_treeids=w["treeids"],
                            class_nodeids=w["nodeids"], class_ids=w["ids"], class_weights=w["weights"],
                            base_values=[base], post_transform="LOGISTIC", **a)
    model("boosting_cancer", [node], [x_input(30)], classifier_outputs(2))
    save_json("boosting_cancer", X, label=clf.predict(X), probabilities=clf.predict_proba(X))


def scaler_pipeline():
    d = load_diabetes()
    pipe = make_pipeline(StandardScaler(), LinearRegression()).fit(d.data, d.target)
    sc, lr = pipe.steps[0][1], pipe.steps[1][1]
    X = sample(d.data)
    nodes = [
        helper.make_node("Scaler", ["X"], ["scaled"], domain="ai.onnx.ml",
                         offset=sc.mean_.astype(np.float32).tolist(),
                         scale=(1 / sc.scale_).astype(np.float32).tolist()),
        helper.make_node("LinearRegressor", ["scaled"], ["predictions"], domain="ai.onnx.ml",
                         coefficients=lr.coef_.astype(np.float32).tolist(),
                         intercepts=[float(lr.intercept_)], targets=1),
    ]
    out = helper.make_tensor_value_info("predictions", TensorProto.FLOAT, ["N", 1])
    model("scaler_linear_diabetes", nodes, [x_input(10)], [out])
    save_json("scaler_linear_diabetes", X, predictions=pipe.predict(X).reshape(-1, 1))


def svm():
    iris = load_iris()
    clf = SVC(kernel="rbf", gamma=0.5, C=1.0, probability=True, random_state=0).fit(iris.data, iris.target)
    X = sample(iris.data)
    node = helper.make_node("SVMClassifier", ["X"], ["label", "probabilities"], domain="ai.onnx.ml",
                            classlabels_ints=clf.classes_.tolist(), kernel_type="RBF",
                            kernel_params=[float(clf._gamma), float(clf.coef0), float(clf.degree)],
                            vectors_per_class=clf.n_support_.tolist(),
                            support_vectors=clf.support_vectors_.astype(np.float32).ravel().tolist(),
                            coefficients=clf._dual_coef_.astype(np.float32).ravel().tolist(),
                            rho=clf._intercept_.astype(np.float32).tolist(),
                            prob_a=clf._probA.astype(np.float32).tolist(),
                            prob_b=clf._probB.astype(np.float32).tolist())
    model("svm_iris", [node], [x_input(4)], classifier_outputs(3))
    proba = clf.predict_proba(X)
    # The label of a probabilistic SVM is the most probable class (as in
    # onnxruntime); scikit-learn's predict votes instead, so store argmax.
    save_json("svm_iris", X, label=clf.classes_[proba.argmax(axis=1)], probabilities=proba)


def mlp():
    iris = load_iris()
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=2000, random_state=0).fit(iris.data, iris.target)
    X = sample(iris.data)
    inits = []
    nodes = []
    h = "X"
    for i, (W, b) in enumerate(zip(clf.coefs_, clf.intercepts_)):
        inits += [numpy_helper.from_array(W.astype(np.float32), f"W{i}"),
                  numpy_helper.from_array(b.astype(np.float32), f"B{i}")]
        nodes += [helper.make_node("MatMul", [h, f"W{i}"], [f"mm{i}"]),
                  helper.make_node("Add", [f"mm{i}", f"B{i}"], [f"z{i}"])]
        h = f"z{i}"
        if i < len(clf.coefs_) - 1:
            nodes.append(helper.make_node("Relu", [h], [f"a{i}"]))
            h = f"a{i}"
    nodes += [helper.make_node("Softmax", [h], ["probabilities"], axis=1),
              helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0)]
    model("mlp_iris", nodes, [x_input(4)], classifier_outputs(3), inits)
    save_json("mlp_iris", X, label=clf.predict(X), probabilities=clf.predict_proba(X))


if __name__ == "__main__":
    logistic_regression()
    random_forest()
    random_forest_regressor()
    gradient_boosting()
    scaler_pipeline()
    svm()
    mlp()
