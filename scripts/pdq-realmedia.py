"""`make pdq-realmedia`: the PDQ of every real photo, ours against the reference (issue 25).

Every still image of ../shared/realmedia that `mediagate inspect` clears is hashed a second time
by the reference: PyPI `pdqhash` 0.2.8 (Meta's C++) over the image as Pillow (with pillow-heif)
decodes it and shows it (EXIF orientation applied, `ImageOps.exif_transpose`; an animation's
first frame; transparency composited on white and 16-bit samples scaled to 8, as docs/media.md
defines the photo "as shown"). Prints the Hamming distance per photo and the counts the issue asks for:
photos the reference rates quality >= 80 within 10 bits, and those further. With --baseline
FILE, fails when a photo is further from the reference than the baseline says (a regression);
--write-baseline FILE records this run as the baseline.

Runs in the reference virtualenv (.local/venv-ref: Pillow, pillow-heif, pdqhash, numpy).
"""
import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pdqhash
import pillow_heif
from PIL import Image, ImageOps

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import realmedia  # noqa: E402  (its folder, file list and sound test)

pillow_heif.register_heif_opener()
Image.MAX_IMAGE_PIXELS = None


def ours(base, batch):
    """{path: (pdq hex, quality, media_type)} for the cleared photos of one `inspect` run."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [realmedia.BIN, "inspect", "--kind", "media", "--out", out] + [os.path.join(base, p) for p in batch]
        r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, RUST_LOG="error"), timeout=900)
        if r.returncode != 0:
            return {}
        items = json.loads(r.stdout).get("items", [])
        got = {}
        for p, item in zip(batch, items):
            hashes = item.get("hashes") or {}
            if item.get("status") == "cleared" and hashes.get("pdq") and not hashes.get("pdq_frames"):
                got[p] = (hashes["pdq"], hashes.get("pdq_quality"))
        return got


def reference(path):
    """(hex, quality, has_alpha) of the image as Pillow shows it; None when Pillow cannot."""
    try:
        with Image.open(path) as im:
            im.seek(0)
            shown = ImageOps.exif_transpose(im)
            alpha = "A" in shown.getbands() or "transparency" in shown.info
            rgb = as_shown(shown, alpha)
    except Exception:  # noqa: BLE001 - anything Pillow refuses is left out of the comparison
        return None
    vector, quality = pdqhash.compute(rgb)
    return np.packbits(np.asarray(vector, dtype=np.uint8)).tobytes().hex(), int(quality), alpha


def as_shown(im, alpha):
    """RGB8 as docs/media.md defines "as shown": transparency composited on white; 16-bit
    samples scaled to 8 bits (Pillow's own `convert("RGB")` clips a 16-bit grey image instead)."""
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        grey = (np.asarray(im).astype(np.uint32) >> 8).clip(0, 255).astype(np.uint8)
        return np.stack([grey] * 3, axis=-1)
    if alpha:
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, im.convert("RGBA")).convert("RGB"))
    return np.asarray(im.convert("RGB"))


def distance(a, b):
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline")
    ap.add_argument("--write-baseline")
    args = ap.parse_args()
    base = realmedia.folder()
    paths = [p for p in realmedia.files(base) if not realmedia.is_sound(p, base)]
    batches = [paths[i : i + 9] for i in range(0, len(paths), 9)]
    mine = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for part in pool.map(lambda b: ours(base, b), batches):
            mine.update(part)
    rows = []
    for p in sorted(mine):
        ref = reference(os.path.join(base, p))
        if ref is None:
            continue
        d = distance(mine[p][0], ref[0])
        rows.append((p, d, ref[1], mine[p][1], ref[2]))
    good = [r for r in rows if r[2] >= 80]
    near = [r for r in good if r[1] <= 10]
    far = [r for r in good if r[1] > 10]
    print(f"{'bits':>4} {'ref q':>5} {'our q':>5} alpha photo")
    for p, d, rq, oq, alpha in sorted(rows, key=lambda r: -r[1]):
        print(f"{d:>4} {rq:>5} {oq if oq is not None else '-':>5} {'yes' if alpha else '   '}   {p}")
    dists = sorted(r[1] for r in rows)
    print(
        f"\npdq-realmedia: {len(rows)} photos compared (cleared by mediagate and decoded by Pillow); "
        f"{len(good)} rated quality >= 80 by the reference: {len(near)} within 10 bits, {len(far)} further"
        + (f" ({', '.join(f'{r[0]} {r[1]} bits' for r in far)})" if far else "")
        + f"; median distance {dists[len(dists) // 2] if dists else '-'} bits, max {dists[-1] if dists else '-'}"
    )
    if args.write_baseline:
        with open(args.write_baseline, "w", encoding="utf-8") as f:
            f.write("# photo (under ../shared/realmedia)\tbits from the pdqhash reference\n")
            for p, d, *_ in rows:
                f.write(f"{p}\t{d}\n")
    if args.baseline:
        was = {}
        with open(args.baseline, encoding="utf-8") as f:
            for line in f:
                if line.startswith("#") or not line.strip():
                    continue
                p, d = line.rstrip("\n").split("\t")
                was[p] = int(d)
        worse = [(p, d, was[p]) for p, d, *_ in rows if p in was and d > was[p]]
        for p, d, w in worse:
            print(f"  {p}: {d} bits from the reference, {w} in the baseline")
        if worse:
            sys.exit(f"pdq-realmedia: {len(worse)} photo(s) further from the reference than the baseline")
    if far and not args.baseline:
        sys.exit(1)


if __name__ == "__main__":
    main()
