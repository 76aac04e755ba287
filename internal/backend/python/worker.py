"""shoal's Python worker: loads one model and answers inference frames.

shoal starts it as `python3 worker.py IN_FD OUT_FD` and speaks a framed
protocol over the two pipes (stdout and stderr are left to the model's own
prints and tracebacks, which shoal logs). Every frame is a little-endian u32
payload length, then the payload: a u8 kind and its body.

  shoal -> worker  LOAD   (1) JSON settings, once, first
                   INFER  (2) tensors
  worker -> shoal  READY  (3) JSON signature hints, once, after LOAD
                   RESULT (4) tensors
                   ERROR  (5) u8 class (1 bad input, 2 model error, 3 load
                              error), then a UTF-8 message

Tensors: u16 count, then for each: u16 name length, name (UTF-8), u8 type
code, u8 rank, rank i64 dimensions, u64 data length, data: the raw
little-endian elements (BYTES: each element as u32 length, then its bytes).

It needs only Python 3 and numpy (and whatever the model imports).
"""
import importlib.util
import json
import os
import pickle
import struct
import sys
import traceback

import numpy as np

LOAD, INFER, READY, RESULT, ERROR = 1, 2, 3, 4, 5
BAD_INPUT, MODEL_ERROR, LOAD_ERROR = 1, 2, 3

# Type codes, as in shoal's frame.go; 13 is BYTES.
NUMERIC = {
    1: np.dtype("?"), 2: np.dtype("u1"), 3: np.dtype("<u2"), 4: np.dtype("<u4"), 5: np.dtype("<u8"),
    6: np.dtype("i1"), 7: np.dtype("<i2"), 8: np.dtype("<i4"), 9: np.dtype("<i8"),
    10: np.dtype("<f2"), 11: np.dtype("<f4"), 12: np.dtype("<f8"),
}
BYTES = 13
NAMES = {"BOOL": 1, "UINT8": 2, "UINT16": 3, "UINT32": 4, "UINT64": 5, "INT8": 6, "INT16": 7,
         "INT32": 8, "INT64": 9, "FP16": 10, "FP32": 11, "FP64": 12, "BYTES": 13}
CODE_NAMES = {v: k for k, v in NAMES.items()}


def read_exact(f, n):
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = f.readinto(view[got:])
        if not k:
            raise EOFError
        got += k
    return buf


def read_frame(f):
    (n,) = struct.unpack("<I", read_exact(f, 4))
    if n < 1:
        raise ValueError("empty frame")
    buf = read_exact(f, n)
    return buf[0], memoryview(buf)[1:]


def write_frame(f, kind, parts):
    f.write(struct.pack("<IB", 1 + sum(len(p) for p in parts), kind))
    for p in parts:
        f.write(p)
    f.flush()


def decode(buf):
    """Decodes tensors into a dict name -> ndarray (BYTES: object array of bytes)."""
    (count,) = struct.unpack_from("<H", buf, 0)
    off = 2
    out = {}
    for _ in range(count):
        (nl,) = struct.unpack_from("<H", buf, off)
        off += 2
        name = bytes(buf[off:off + nl]).decode()
        off += nl
        code, rank = struct.unpack_from("<BB", buf, off)
        off += 2
        shape = struct.unpack_from("<%dq" % rank, buf, off)
        off += 8 * rank
        (nb,) = struct.unpack_from("<Q", buf, off)
        off += 8
        raw = buf[off:off + nb]
        off += nb
        if code == BYTES:
            items, p = [], 0
            while p < nb:
                (l,) = struct.unpack_from("<I", raw, p)
                items.append(bytes(raw[p + 4:p + 4 + l]))
                p += 4 + l
            arr = np.empty(len(items), dtype=object)
            arr[:] = items
            out[name] = arr.reshape(shape)
        else:
            out[name] = np.frombuffer(raw, dtype=NUMERIC[code]).reshape(shape)
    return out


def code_of(arr):
    if arr.dtype.kind in "USO":
        return BYTES
    for code, dt in NUMERIC.items():
        if arr.dtype == dt or arr.dtype == dt.newbyteorder("="):
            return code
    raise TypeError("predict returned an array of dtype %s, which has no Open Inference Protocol type" % arr.dtype)


def encode(named):
    """Encodes [(name, value, code or None)] as tensors."""
    parts = [struct.pack("<H", len(named))]
    for name, value, code in named:
        if code is None:
            code = code_of(np.asarray(value))
        if code == BYTES:
            arr = np.asarray(value, dtype=object)
            chunks = []
            for x in arr.reshape(-1):
                b = x if isinstance(x, (bytes, bytearray)) else str(x).encode()
                chunks.append(struct.pack("<I", len(b)))
                chunks.append(b)
            data = b"".join(chunks)
        else:
            arr = np.asarray(value, dtype=NUMERIC[code], order="C")
            data = arr.reshape(-1).view(np.uint8).data
        nb = name.encode()
        parts.append(struct.pack("<H", len(nb)) + nb + struct.pack("<BB", code, arr.ndim)
                     + struct.pack("<%dq" % arr.ndim, *arr.shape) + struct.pack("<Q", len(data)))
        parts.append(data)
    return parts


def dtype_name(dt):
    dt = np.dtype(dt)
    if dt.kind in "USO":
        return "BYTES"
    for code, d in NUMERIC.items():
        if dt == d or dt == d.newbyteorder("="):
            return CODE_NAMES[code]
    return ""


def load_pickle(cfg):
    with open(cfg["artifact"], "rb") as f:
        est = pickle.load(f)
    method = getattr(est, cfg["method"], None)
    if method is None:
        raise AttributeError("%s has no method %s" % (type(est).__name__, cfg["method"]))
    hints = {"inputs": [], "outputs": []}
    n = getattr(est, "n_features_in_", None)
    hints["inputs"].append({"name": "input", "datatype": "FP32", "shape": [-1, int(n) if n else -1]})
    classes = getattr(est, "classes_", None)
    if cfg["method"] == "predict":
        dt = dtype_name(classes.dtype) if classes is not None else "FP64"
        hints["outputs"].append({"name": "predictions", "datatype": dt, "shape": [-1]})
    elif cfg["method"] in ("predict_proba", "predict_log_proba", "decision_function"):
        k = len(classes) if classes is not None else -1
        name = "probabilities" if cfg["method"] == "predict_proba" else cfg["method"]
        hints["outputs"].append({"name": name, "datatype": "FP64", "shape": [-1, k]})
    else:
        hints["outputs"].append({"name": cfg["method"], "datatype": "", "shape": None})

    def predict(inputs):
        (x,) = inputs.values()
        return method(x)
    return predict, hints


def load_module(cfg):
    path = cfg["module"]
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    cls = getattr(mod, cfg["class"], None)
    if cls is None:
        raise AttributeError("%s defines no class %s" % (os.path.basename(path), cfg["class"]))
    obj = cls()
    if hasattr(obj, "load"):
        obj.load()
    return obj.predict, {"inputs": [], "outputs": []}


def name_outputs(result, outputs):
    """Pairs predict's result with the outputs [(name, code or None)]."""
    if isinstance(result, dict):
        missing = [n for n, _ in outputs if n not in result]
        if missing:
            raise KeyError("predict returned no output %s (it returned %s)" % (missing, sorted(result)))
        return [(n, result[n], c) for n, c in outputs]
    if len(outputs) > 1:
        if not isinstance(result, (tuple, list)) or len(result) != len(outputs):
            raise TypeError("the model has %d outputs: predict must return a dict or a tuple of %d" % (len(outputs), len(outputs)))
        return [(n, r, c) for (n, c), r in zip(outputs, result)]
    (n, c), = outputs
    return [(n, result, c)]


def main():
    rf = os.fdopen(int(sys.argv[1]), "rb")
    wf = os.fdopen(int(sys.argv[2]), "wb")
    kind, body = read_frame(rf)
    cfg = json.loads(bytes(body))
    os.chdir(cfg["dir"])
    sys.path.insert(0, cfg["dir"])
    try:
        predict, hints = load_pickle(cfg) if cfg["kind"] == "pickle" else load_module(cfg)
    except BaseException as e:
        traceback.print_exc()
        msg = "".join(traceback.format_exception_only(type(e), e)).strip()
        write_frame(wf, ERROR, [bytes([LOAD_ERROR]), msg.encode()])
        return 1
    write_frame(wf, READY, [json.dumps(hints).encode()])
    outputs = None
    while True:
        try:
            kind, body = read_frame(rf)
        except EOFError:
            return 0
        if outputs is None:
            # model.yaml's outputs, completed from the hints (as shoal does).
            hinted = hints["outputs"]
            outputs = []
            for i, o in enumerate(cfg["outputs"] or hinted):
                dt = o["datatype"] or (hinted[i]["datatype"] if i < len(hinted) else "")
                outputs.append((o["name"], NAMES.get(dt)))
        try:
            result = predict(decode(body))
        except (ValueError, TypeError, KeyError, IndexError) as e:
            write_frame(wf, ERROR, [bytes([BAD_INPUT]), ("%s: %s" % (type(e).__name__, e)).encode()])
            continue
        except Exception as e:
            traceback.print_exc()
            write_frame(wf, ERROR, [bytes([MODEL_ERROR]), ("%s: %s" % (type(e).__name__, e)).encode()])
            continue
        try:
            parts = encode(name_outputs(result, outputs))
        except Exception as e:
            traceback.print_exc()
            write_frame(wf, ERROR, [bytes([MODEL_ERROR]), ("predict's result: %s: %s" % (type(e).__name__, e)).encode()])
            continue
        write_frame(wf, RESULT, parts)


if __name__ == "__main__":
    sys.exit(main())
