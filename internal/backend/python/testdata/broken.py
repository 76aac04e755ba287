class Model:
    def load(self):
        raise RuntimeError("weights file missing")

    def predict(self, inputs):
        return inputs
