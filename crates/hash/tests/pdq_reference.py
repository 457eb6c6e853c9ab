"""The PDQ reference for crates/hash: PyPI pdqhash 0.2.8 (Meta's ThreatExchange C++ behind a
Cython binding), run on raw RGB8 files, in the reference virtualenv (`make reference-venv`).

  python pdq_reference.py MANIFEST.json            -> JSON on stdout, one object per image
  python pdq_reference.py --bench RUNS MANIFEST.json -> median ms of pdqhash.compute per image

MANIFEST.json is a list of {"name", "file", "width", "height"}; each file holds height * width * 3
bytes, rows top to bottom. What the oracle prints per image:

  hex       pdqhash.compute's bit vector packed big-endian, as 64 hex digits
  words     the same bits put back into the reference's Hash256 words (bit k = vector[255 - k],
            word k >> 4, bit k & 15, per bindings.pyx's hash_to_vector) and printed the way
            Hash256::format does (%04hx, w[15] first); hex == words is asserted
  quality   pdqhash.compute's quality
  dihedral  the 8 hashes of pdqhash.compute_dihedral (packed like hex), and dihedral_quality
"""

import json
import sys
import time

import numpy as np
import pdqhash


def packed(vector):
    bits = np.asarray(vector, dtype=np.uint8)
    assert bits.shape == (256,), bits.shape
    return np.packbits(bits).tobytes().hex()


def as_words(vector):
    bits = np.asarray(vector)[::-1]  # undo hash_to_vector's reversal: bits[k] is bit k
    w = [0] * 16
    for k in range(256):
        w[k >> 4] |= int(bits[k]) << (k & 15)
    return "".join("%04x" % w[i] for i in range(15, -1, -1))


def load(item):
    pixels = np.fromfile(item["file"], dtype=np.uint8)
    return pixels.reshape(item["height"], item["width"], 3)


def oracle(manifest):
    out = {}
    for item in manifest:
        image = load(item)
        vector, quality = pdqhash.compute(image)
        hex_, words = packed(vector), as_words(vector)
        assert hex_ == words, (item["name"], hex_, words)
        variants, dihedral_quality = pdqhash.compute_dihedral(image)
        out[item["name"]] = {
            "hex": hex_,
            "words": words,
            "quality": int(quality),
            "dihedral": [packed(v) for v in variants],
            "dihedral_quality": int(dihedral_quality),
        }
    return out


def bench(manifest, runs):
    out = {}
    for item in manifest:
        image = load(item)
        pdqhash.compute(image)  # warm-up
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            pdqhash.compute(image)
            times.append((time.perf_counter() - t) * 1e3)
        times.sort()
        out[item["name"]] = times[len(times) // 2]
    return out


def main():
    args = sys.argv[1:]
    if args and args[0] == "--bench":
        runs, path = int(args[1]), args[2]
        with open(path) as f:
            result = bench(json.load(f), runs)
    else:
        with open(args[0]) as f:
            result = oracle(json.load(f))
    result["_version"] = pdqhash.__version__
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
