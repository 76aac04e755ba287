#!/usr/bin/python3
"""Write the <case>.expected.json files beside the hand-written models.

No LightGBM library was available (Debian bookworm does not package it), so
the *.txt models here were written by hand in LightGBM's text format, and
the raw score of every row below was traced by hand through the trees, as
each note says (tN: the path in tree N; leaf values are the files'). This
script only applies LightGBM's output conversions (ConvertOutput) to those
raw scores, in float64 as LightGBM does:

    binary, multiclassova, cross_entropy: 1 / (1 + exp(-sigmoid * raw))
    multiclass: softmax
    poisson, gamma, tweedie: exp(raw)
    regression: raw
    average_output (random forest): raw is the mean of the trees, not the sum

Run it with any python3 (no packages needed): python3 expected.py
"""

import json
import math

NAN = None  # a missing value in the inputs

CASES = {
    "binary": {
        "link": ("sigmoid", 1.0),
        "rows": [
            # a, b, c; t0: a<=2.5 (type None) ? leaf0 : (b<=1e-35 (type NaN, default left) ? leaf1 : leaf2)
            #          t1: c zero (type Zero, default left) or c<=-1.5 ? leaf0 : (c<=4 (type NaN, default right) ? leaf1 : leaf2)
            ([1, 5, 0], -0.5 + -0.125, "t0: a=1<=2.5 leaf0; t1: c=0 is zero, default left, leaf0"),
            ([3, NAN, 5], 0.25 + 0.1875, "t0: a=3>2.5, b=NaN default left leaf1; t1: c=5>-1.5, 5>4 leaf2"),
            ([NAN, 0.5, 4], -0.5 + 0.0625, "t0: a=NaN read as 0<=2.5 leaf0; t1: c=4>-1.5, 4<=4.0000000000000009 leaf1"),
            ([2.5000002, 2, NAN], 0.75 + -0.125,
             "t0: a=float32 2.5000002>2.5000000000000004, b=2>1e-35 leaf2; t1: c=NaN read as 0, zero, default left leaf0"),
            ([10, 0, -2], 0.25 + -0.125, "t0: a=10>2.5, b=0<=1e-35 leaf1; t1: c=-2<=-1.5 leaf0"),
            ([4, 3, 4.5], 0.75 + 0.1875, "t0: b=3>1e-35 leaf2; t1: c=4.5>4 leaf2"),
            ([NAN, NAN, NAN], -0.5 + -0.125, "t0: a=NaN read as 0 leaf0; t1: c=NaN read as 0, zero, default left leaf0"),
            ([3, NAN, -1.5], 0.25 + -0.125, "t0: b=NaN default left leaf1; t1: c=-1.5<=-1.5 leaf0"),
            ([2.5, 0, 0], -0.5 + -0.125, "t0: a=2.5<=2.5000000000000004 leaf0; t1: c=0 zero leaf0"),
        ],
    },
    "multiclass": {
        "link": ("softmax",),
        "rows": [
            # x0, x1 (categorical); class k sums trees k and k+3
            # t0: x1 in {1,3} ? 0.5 : -0.25; t1: x0<=1.5 ? -0.3 : (x1 in {0,33} ? 0.6 : 0.1); t2: 0.05
            # t3: x0<=0.5 (type NaN, default right) ? 0.1 : -0.1; t4: -0.05; t5: x0<=2.5 (NaN, default left) ? 0.2 : -0.2
            ([0, 1], [0.5 + 0.1, -0.3 - 0.05, 0.05 + 0.2], "t0: 1 in set; t1: 0<=1.5; t3: 0<=0.5; t5: 0<=2.5"),
            ([2, 33], [-0.25 - 0.1, 0.6 - 0.05, 0.05 + 0.2],
             "t0: 33 beyond the one-word bitset, right; t1: 2>1.5, 33 in {0,33} (second word); t3: 2>0.5; t5: 2<=2.5"),
            ([NAN, NAN], [-0.25 - 0.1, -0.3 - 0.05, 0.05 + 0.2],
             "t0: categorical NaN goes right; t1: NaN (type None) read as 0<=1.5; t3: NaN default right; t5: NaN default left"),
            ([3, 0], [-0.25 - 0.1, 0.6 - 0.05, 0.05 - 0.2], "t0: 0 not in {1,3}; t1: 3>1.5, 0 in {0,33}; t3: right; t5: 3>2.5"),
            ([1, 3.9], [0.5 - 0.1, -0.3 - 0.05, 0.05 + 0.2], "t0: int(3.9)=3 in set; t1: 1<=1.5; t3: 1>0.5; t5: 1<=2.5"),
            ([5, -0.5], [-0.25 - 0.1, 0.6 - 0.05, 0.05 - 0.2],
             "t0: int(-0.5)=0 not in {1,3}; t1: 5>1.5, category 0 in {0,33}; t3, t5: right"),
            ([5, -1], [-0.25 - 0.1, 0.1 - 0.05, 0.05 - 0.2], "t0, t1: negative category goes right; t3, t5: right"),
        ],
    },
    "multiclassova": {
        "link": ("sigmoid", 2.0),
        "rows": [
            # t0: x0<=0.5 ? 1 : -1; t1: x0<=1.5 ? -0.5 : 0.5; t2: 0
            ([0], [1, -0.5, 0], "t0 left, t1 left"),
            ([1], [-1, -0.5, 0], "t0 right, t1 left"),
            ([2], [-1, 0.5, 0], "t0 right, t1 right"),
            ([NAN], [1, -0.5, 0], "NaN (type None) read as 0: both left"),
        ],
    },
    "regression": {
        "link": ("identity",),
        "rows": [
            # t0: x0<=0.30000000000000004 (None) ? 1.5 : (x1 zero (Zero, default right) -> 3.25; x1<=1e-35 ? -2 : 3.25)
            # t1: x1<=0 (type NaN, default right) ? 0.125 : -0.375
            ([0.3, 5], 3.25 - 0.375, "t0: float32 0.3 = 0.30000001192 > 0.30000000000000004, x1=5 leaf2; t1: 5>0"),
            ([0.29999998, 5], 1.5 - 0.375, "t0: float32 0.29999998 <= 0.30000000000000004 leaf0; t1: 5>0"),
            ([NAN, -1], 1.5 + 0.125, "t0: NaN read as 0 leaf0; t1: -1<=0"),
            ([1, 0], 3.25 + 0.125, "t0: x1=0 is zero, default right leaf2; t1: 0<=0"),
            ([1, NAN], 3.25 - 0.375, "t0: NaN read as 0, zero, default right; t1: NaN default right"),
            ([1, 5e-36], 3.25 + 0.125,
             "t0: 5e-36 is zero; t1: LightGBM's predictor reads |x|<=1e-35 as 0, and 0<=0"),
            ([0.5, -3], -2 + 0.125, "t0: x1=-3 not zero, <=1e-35 leaf1; t1: -3<=0"),
        ],
    },
    "poisson": {
        "link": ("exp",),
        "rows": [
            ([0], 0.5 + 0.1, "t0: 0<=1"),
            ([2], -0.5 + 0.1, "t0: 2>1"),
            ([NAN], 0.5 + 0.1, "t0: NaN (type None) read as 0<=1"),
            ([1], 0.5 + 0.1, "t0: 1<=1"),
        ],
    },
    "rf_binary": {
        "link": ("sigmoid", 1.0),
        "average": 3,
        "rows": [
            # t0: x0<=0 ? 1 : -1; t1: x0<=1 ? 0.5 : -0.5; t2: 0.25; averaged over 3 iterations
            ([-1], 1 + 0.5 + 0.25, "t0 left, t1 left"),
            ([0.5], -1 + 0.5 + 0.25, "t0 right, t1 left"),
            ([2], -1 - 0.5 + 0.25, "t0 right, t1 right"),
        ],
    },
    "linear": {
        "link": ("identity",),
        "rows": [
            # t0: x0<=0 ? (0.5 + 2*x1, or 1 if x1 is NaN) : (-1 + 0.5*x0 - x1, or 2 if x0 or x1 is NaN); t1: constant 0.25
            ([-1, 2], 0.5 + 2 * 2 + 0.25, "t0 leaf0 linear"),
            ([-1, NAN], 1 + 0.25, "t0 leaf0, x1 NaN: leaf value"),
            ([2, 1], -1 + 0.5 * 2 - 1 + 0.25, "t0 leaf1 linear"),
            ([NAN, 1], 0.5 + 2 * 1 + 0.25, "t0: x0 NaN (type None) read as 0, leaf0 uses only x1"),
            ([3, NAN], 2 + 0.25, "t0 leaf1, x1 NaN: leaf value"),
        ],
    },
}


def convert(link, raw):
    if link[0] == "sigmoid":
        return [1 / (1 + math.exp(-link[1] * x)) for x in raw]
    if link[0] == "softmax":
        hi = max(raw)
        e = [math.exp(x - hi) for x in raw]
        return [x / sum(e) for x in e]
    if link[0] == "exp":
        return [math.exp(x) for x in raw]
    return list(raw)


def main():
    for name, case in CASES.items():
        inputs, raws, preds, notes = [], [], [], []
        for row, raw, note in case["rows"]:
            raw = raw if isinstance(raw, list) else [raw]
            raw = [x / case.get("average", 1) for x in raw]
            inputs.append(row)
            raws.append(raw)
            preds.append(convert(case["link"], raw))
            notes.append(note)
        with open(name + ".expected.json", "w") as f:
            json.dump({"inputs": inputs, "raw": raws, "predict": preds, "notes": notes}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
