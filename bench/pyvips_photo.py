#!/usr/bin/env python3
"""Peer for `cargo bench -p mediagate-media --bench photo`: the same photo job done by libvips
in-process (pyvips), the fair comparison (two `vipsthumbnail` processes mostly measure start-up).

Per input: full = thumbnail_buffer(src, 2048) -> JPEG Q85 stripped; thumb = thumbnail_buffer(full
JPEG, 320) -> JPEG Q85 stripped. libvips' operation cache is disabled so every run does the work.
Prints one JSON object: {"vips": version, "runs": n, "cases": {name: {"median_ms", "min_ms",
"times_ms", "decode_ms", "full_bytes", "thumb_bytes"}}}. A HEIC input is read
by libvips' heifload (Debian's libheif 1.15.1 with libde265).

Usage: pyvips_photo.py RUNS NAME=PATH [NAME=PATH ...]
"""
import json
import statistics
import sys
import time

import pyvips


def one(src: bytes):
    full = pyvips.Image.thumbnail_buffer(src, 2048)
    full_jpg = full.write_to_buffer(".jpg[Q=85,strip]")
    thumb = pyvips.Image.thumbnail_buffer(full_jpg, 320)
    thumb_jpg = thumb.write_to_buffer(".jpg[Q=85,strip]")
    return full_jpg, thumb_jpg


def main() -> None:
    runs = int(sys.argv[1])
    pyvips.cache_set_max(0)
    cases = {}
    for arg in sys.argv[2:]:
        name, path = arg.split("=", 1)
        with open(path, "rb") as f:
            src = f.read()
        one(src)  # warm-up
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            full_jpg, thumb_jpg = one(src)
            times.append((time.perf_counter() - t) * 1e3)
        # Where the time goes: the full decode alone (for HEIC, libheif + libde265 in both).
        decode_times = []
        for _ in range(runs):
            t = time.perf_counter()
            pyvips.Image.new_from_buffer(src, "").copy_memory()
            decode_times.append((time.perf_counter() - t) * 1e3)
        cases[name] = {
            "decode_ms": statistics.median(decode_times),
            "median_ms": statistics.median(times),
            "min_ms": min(times),
            "times_ms": times,
            "full_bytes": len(full_jpg),
            "thumb_bytes": len(thumb_jpg),
        }
    version = f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}"
    print(json.dumps({"vips": version, "concurrency": pyvips.concurrency_get(), "runs": runs, "cases": cases}))


if __name__ == "__main__":
    main()
