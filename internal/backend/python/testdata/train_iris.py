"""Trains the python backend tests' iris LogisticRegression into model.pkl
(in the current directory) and writes expected.json: the predictions and
probabilities for the test rows, computed from float32 inputs as shoal
sends them."""
import json, pickle
import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

X, y = load_iris(return_X_y=True)
clf = LogisticRegression(max_iter=1000).fit(X, y)
with open("model.pkl", "wb") as f:
    pickle.dump(clf, f)
rows = np.asarray([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]], dtype=np.float32)
with open("expected.json", "w") as f:
    json.dump({"rows": rows.tolist(), "predictions": clf.predict(rows).tolist(),
               "probabilities": clf.predict_proba(rows).tolist()}, f)
