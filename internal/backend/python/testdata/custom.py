"""A custom model for the python backend tests: y = x @ w, and a label per
row. Some inputs make it misbehave, for the tests of failures."""
import os, signal, time
import numpy as np


class Model:
    def load(self):
        self.w = np.array([1.0, 2.0, 3.0], dtype=np.float32)
        self.labels = ["low", "high"]

    def predict(self, inputs):
        x = inputs["x"]
        first = float(x[0, 0]) if x.size else 0.0
        if first == -1:  # hang: write the pid where the test finds it, then sleep
            with open("busy.pid", "w") as f:
                f.write(str(os.getpid()))
            time.sleep(60)
        if first == -2:  # die mid-request
            os.kill(os.getpid(), signal.SIGKILL)
        if first == -3:  # grow past the memory limit
            hog = np.ones(50_000_000)  # 400 MB
            time.sleep(60)
        if x.shape[1] != 3:
            raise ValueError("x has %d columns, want 3" % x.shape[1])
        y = x @ self.w
        return {"y": y, "label": [self.labels[int(v > 10)] for v in y]}
