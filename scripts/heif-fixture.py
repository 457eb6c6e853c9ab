#!/usr/bin/env python3
"""Writes a HEIC/HEIF or AVIF test photo the way phones' encoders shape them, with the real
encoders: pillow-heif (libheif 1.23.6 with x265) for HEIC, Pillow's own AVIF writer (libavif)
for AVIF. Used by the tests (crates/testkit/src/heif.rs) through .local/venv-ref.

usage: heif-fixture.py OUT heic|avif WIDTH HEIGHT [--grid TILE] [--orientation N] [--bits 10]
                       [--alpha] [--thumb EDGE] [--p3] [--quality Q]

The picture has four quadrants so a test can tell how it was turned: top-left red, top-right
green, bottom-left blue, bottom-right white, with a little texture. `--orientation N` stores it
pre-rotated with the HEIF transformations (irot/imir) that undo EXIF orientation N, as an
iPhone does, so the image *as displayed* is the quadrant picture again. `--alpha` makes the
left half semi-transparent; `--skin` paints the quadrants in shaded skin tones instead. The EXIF block written with an orientation also carries a Make
tag, "SECRET-MAKE", which no output may keep.
"""
import argparse
import io
import sys

import numpy as np
from PIL import Image


def quadrants(w, h, bits, alpha, skin=False):
    y, x = np.mgrid[0:h, 0:w]
    top, left = y < h // 2, x < w // 2
    rgb = np.zeros((h, w, 3), dtype=np.float64)
    colours = [(220, 30, 30), (30, 200, 30), (30, 30, 220), (235, 235, 235)]
    if skin:  # skin tones with round shading, so the classifier's score is not near zero
        colours = [(224, 172, 138), (198, 134, 102), (141, 85, 60), (250, 205, 180)]
    rgb[top & left] = colours[0]
    rgb[top & ~left] = colours[1]
    rgb[~top & left] = colours[2]
    rgb[~top & ~left] = colours[3]
    if skin:
        cx, cy = (x % (w // 2)) / (w / 2) - 0.5, (y % (h // 2)) / (h / 2) - 0.5
        rgb *= (1.0 - 0.6 * (cx * cx + cy * cy))[..., None]
    rgb += ((x * 7 + y * 13) % 17 - 8)[..., None]  # texture, so the encoder has work
    rgb = np.clip(rgb, 0, 255)
    if bits > 8:
        data = (rgb * 257).astype(np.uint16)
        mode = "RGB;16" if not alpha else "RGBA;16"
        if alpha:
            a = np.where(left, 128 * 257, 65535).astype(np.uint16)[..., None]
            data = np.concatenate([data, a], axis=2)
        return data, mode
    data = rgb.astype(np.uint8)
    if alpha:
        a = np.where(left, 128, 255).astype(np.uint8)[..., None]
        return np.concatenate([data, a], axis=2), "RGBA"
    return data, "RGB"


# The stored pixels for EXIF orientation n: the displayed image turned by the inverse of n.
STORE = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, 1),
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
    8: lambda a: np.rot90(a, -1),
}


def exif_with_orientation(n):
    ex = Image.Exif()
    ex[0x0112] = n
    ex[0x010F] = "SECRET-MAKE"
    return ex.tobytes()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("kind", choices=["heic", "avif"])
    p.add_argument("width", type=int)
    p.add_argument("height", type=int)
    p.add_argument("--grid", type=int, default=0)
    p.add_argument("--orientation", type=int, default=1)
    p.add_argument("--bits", type=int, default=8)
    p.add_argument("--alpha", action="store_true")
    p.add_argument("--thumb", type=int, default=0)
    p.add_argument("--p3", action="store_true")
    p.add_argument("--skin", action="store_true")
    p.add_argument("--from", dest="source", default="", help="encode this picture (any Pillow format) instead")
    p.add_argument("--quality", type=int, default=80)
    a = p.parse_args()

    if a.source:
        data, mode = np.asarray(Image.open(a.source).convert("RGB")), "RGB"
    else:
        data, mode = quadrants(a.width, a.height, a.bits, a.alpha, a.skin)
    buf = io.BytesIO()
    if a.kind == "heic":
        import pillow_heif

        # The stored pixels are the displayed picture turned by the inverse of the orientation;
        # pillow-heif hands the EXIF Orientation to libheif, which writes it as irot/imir.
        stored = np.ascontiguousarray(STORE[a.orientation](data))
        h, w = stored.shape[:2]
        heif = pillow_heif.from_bytes(mode=mode, size=(w, h), data=stored.tobytes())
        kw = {"quality": a.quality}
        if a.orientation != 1:
            kw["exif"] = exif_with_orientation(a.orientation)
        if a.thumb:
            kw["thumbnails"] = [a.thumb]
        if a.bits > 8:
            kw["save_to_12bit"] = a.bits == 12
        if a.grid:
            kw["tile_size"] = a.grid
        if a.p3:
            kw["color_primaries"] = 12  # SMPTE EG 432-1 (Display P3), as nclx
            kw["transfer_characteristic"] = 13
            kw["matrix_coefficients"] = 6
        heif.save(buf, **kw)
    else:
        im = Image.fromarray(np.ascontiguousarray(STORE[a.orientation](data)), mode)
        kw = {"quality": a.quality}
        if a.orientation != 1:
            kw["exif"] = exif_with_orientation(a.orientation)
        im.save(buf, format="AVIF", **kw)
    with open(a.out, "wb") as f:
        f.write(buf.getvalue())


if __name__ == "__main__":
    sys.exit(main())
