"""Oracle for crates/media/tests/pdq.rs: what a Pillow user's PDQ of a file is.

  python pdq_pipeline.py FILE...   -> one JSON line per file: {"file", "hex", "quality", "size"}

Each file is read with Pillow (HEIC/HEIF through pillow-heif), oriented as displayed
(ImageOps.exif_transpose; pillow-heif applies irot/imir itself), composited on white when it has
transparency (contract §5), converted to RGB, and hashed with the PyPI pdqhash (Meta's C++).
A file ending in .rgb is raw RGB8 with its size in the name: NAME.WxH.rgb.
"""

import json
import sys

import numpy as np
import pdqhash
import pillow_heif
from PIL import Image, ImageOps


def shown(path):
    if path.endswith(".rgb"):
        w, h = map(int, path.rsplit(".", 2)[-2].split("x"))
        return np.fromfile(path, dtype=np.uint8).reshape(h, w, 3)
    img = ImageOps.exif_transpose(Image.open(path))
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return np.asarray(img.convert("RGB"))


def main():
    pillow_heif.register_heif_opener()
    for path in sys.argv[1:]:
        rgb = shown(path)
        vector, quality = pdqhash.compute(rgb)
        hex_ = np.packbits(np.asarray(vector, dtype=np.uint8)).tobytes().hex()
        print(json.dumps({"file": path, "hex": hex_, "quality": int(quality), "size": [rgb.shape[1], rgb.shape[0]]}))


if __name__ == "__main__":
    main()
