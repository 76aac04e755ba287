#!/usr/bin/env python3
"""The founding example's predict.py, changed only to load the XGBoost iris model
that shoal serves: POST /predict {"instances": [[...]]} -> {"predictions": [class, ...]}.

The model file is the first argument or $MODEL (default: the example repository's
examples/models/iris/1/model.json). bench/run.sh runs it as
`MODEL=... gunicorn -w 2 -b 127.0.0.1:PORT --chdir bench/flask predict:app`.
"""
import os, sys
from flask import Flask, request, jsonify
import numpy as np
import xgboost

app = Flask(__name__)
_default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                        "examples", "models", "iris", "1", "model.json")
_path = sys.argv[1] if __name__ == "__main__" and len(sys.argv) > 1 else os.environ.get("MODEL", _default)
model = xgboost.Booster(model_file=_path)
# One request is a few rows: one thread. XGBoost's default, an OpenMP thread per core in
# every worker, makes the workers spin against each other (about 10x slower here).
model.set_param({"nthread": 1})

@app.route("/predict", methods=["POST"])
def predict():
    body = request.get_json(force=True, silent=True)
    if not body or "instances" not in body:
        return jsonify({"error": "expected JSON body with 'instances'"}), 400
    try:
        X = np.asarray(body["instances"], dtype=np.float32)
        probs = model.predict(xgboost.DMatrix(X, nthread=1))  # multi:softprob: [n, 3]
        preds = np.argmax(probs, axis=1).tolist()
    except Exception as e:  # bad shape / types
        return jsonify({"error": str(e)}), 400
    return jsonify({"predictions": preds})

@app.route("/health", methods=["GET"])
def health():
    return "ok"

if __name__ == "__main__":
    # Flask dev server, as in the seed (threaded=True is Flask's default since 1.0)
    app.run(host=os.environ.get("HOST", "0.0.0.0"), port=int(os.environ.get("PORT", "5000")))
