#!/usr/bin/env python3
"""`make realmedia`: every file of ../shared/realmedia through `mediagate inspect`, each outcome
checked against tests/realmedia/expectations.tsv.

The folder holds 587 real files from other projects' test suites (phones' HEIC, AOM's AVIF
conformance files, slow motion, voice notes, PngSuite, fuzzer finds…), referenced in place and
never copied into the repository. The table says, for each file, what a person who looked at it
(ffprobe, Pillow, pillow-heif) expects mediagate to do with it: `cleared` with the size the item
is shown at, or `rejected` with the reason code, and why.

    scripts/realmedia.py [--write] [--only SUBSTRING]

--write rewrites the table's outcome columns from this run (for reviewing a change: the diff is
what changed), keeping each file's `why`. Exit status 1 on any difference or a missing folder.
Photos and videos go through `inspect` nine at a time (a `media` job), sound files one at a time
(a `voice_note` job): the same rules, sandbox and pipelines as a worker, with no broker or S3.
"""
import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE = os.path.join(ROOT, "tests", "realmedia", "expectations.tsv")
BIN = os.path.join(ROOT, "target", "release", "mediagate")
AUDIO = {"mp3", "wav", "aac", "m4a", "m4b", "flac", "amr", "oga", "opus", "ogg", "wma", "aiff", "aif", "caf", "mka", "ac3", "ape", "wv", "mpc", "spx", "mid", "midi", "dsf"}


def folder():
    d = os.environ.get("MEDIAGATE_REALMEDIA") or os.path.join(os.path.dirname(ROOT), "shared", "realmedia")
    if not os.path.isdir(d):
        sys.exit(
            f"realmedia: {d} is absent. `make realmedia` needs the shared folder of real media "
            "(../shared/realmedia beside the checkout, or MEDIAGATE_REALMEDIA=DIR); `make test` does not."
        )
    return d


def files(base):
    out = []
    for dirpath, _, names in os.walk(base):
        for n in names:
            p = os.path.relpath(os.path.join(dirpath, n), base)
            if n in ("README.md", "LICENSE") or n.startswith("."):
                continue
            out.append(p)
    return sorted(out)


def is_sound(path, base):
    ext = path.rsplit(".", 1)[-1].lower()
    if ext in AUDIO:
        return True
    if ext in ("ogg", "webm", "mp4", "3gp"):
        # A container that may hold only sound: ask ffprobe (voice notes come as these too).
        r = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "json", os.path.join(base, path)],
            capture_output=True, text=True,
        )
        try:
            kinds = {s.get("codec_type") for s in json.loads(r.stdout).get("streams", [])}
        except ValueError:
            return False
        return "audio" in kinds and "video" not in kinds
    return False


def outcome(item):
    """(status, code or '', size) as the table writes them."""
    status = item["status"]
    code = (item.get("reason") or {}).get("code", "")
    w, h = item.get("width"), item.get("height")
    size = f"{w}x{h}" if w and h else ""
    if item.get("duration_ms") is not None and not size:
        size = f"{item['duration_ms']}ms"
    return status, code, size


def inspect(base, batch, voice):
    """Runs one inspect over `batch` (paths under `base`); {path: (status, code, size, message)}."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [BIN, "inspect", "--out", out] + [os.path.join(base, p) for p in batch]
        if voice:
            cmd += ["--kind", "voice-note"]
        else:
            cmd += ["--kind", "media"]
        env = dict(os.environ, RUST_LOG="error", MEDIAGATE_LOG_FORMAT="json")
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if r.returncode != 0:
            return {p: ("error", "", "", (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1]) for p in batch}
        v = json.loads(r.stdout)
        got = {}
        if v.get("items") == [] and v.get("reason"):
            for p in batch:
                got[p] = ("rejected", v["reason"]["code"], "", v["reason"]["message"])
            return got
        for p, item in zip(batch, v["items"]):
            status, code, size = outcome(item)
            got[p] = (status, code, size, (item.get("reason") or {}).get("message", ""))
        return got


def read_table():
    rows = {}
    if not os.path.exists(TABLE):
        return rows
    with open(TABLE, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            cols = line.rstrip("\n").split("\t")
            cols += [""] * (5 - len(cols))
            rows[cols[0]] = cols[1:5]
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    base = folder()
    if not os.access(BIN, os.X_OK):
        sys.exit(f"realmedia: {BIN} is missing: `make build` first (make realmedia does)")
    paths = [p for p in files(base) if args.only in p]
    started = time.time()
    sound = [p for p in paths if is_sound(p, base)]
    visual = [p for p in paths if p not in set(sound)]
    jobs = [([p], True) for p in sound] + [(visual[i : i + 9], False) for i in range(0, len(visual), 9)]
    got = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for part in pool.map(lambda j: inspect(base, *j), jobs):
            got.update(part)
    table = read_table()
    bad = []
    for p in paths:
        status, code, size, message = got[p]
        want = table.get(p)
        if want is None:
            bad.append(f"{p}: not in the table; got {status} {code} {size} ({message})")
        elif (want[0], want[1], want[2]) != (status, code, size):
            bad.append(f"{p}: expected {want[0]} {want[1]} {want[2]}, got {status} {code} {size} ({message}); why: {want[3]}")
    missing = [p for p in table if p not in got and args.only in p]
    for p in missing:
        bad.append(f"{p}: in the table but not in {base}")
    if args.write:
        with open(TABLE, "w", encoding="utf-8") as f:
            f.write(
                "# file (under ../shared/realmedia)\tstatus\tcode\tsize (WxH shown, or the voice note's length)\twhy\n"
            )
            for p in sorted(set(table) | set(got)):
                if p in got:
                    status, code, size, message = got[p]
                    why = (table.get(p) or ["", "", "", ""])[3] or message
                else:
                    status, code, size, why = table[p]
                f.write(f"{p}\t{status}\t{code}\t{size}\t{why}\n")
    secs = time.time() - started
    counts = {}
    for p in paths:
        counts[got[p][0]] = counts.get(got[p][0], 0) + 1
    print(f"realmedia: {len(paths)} files in {secs:.0f} s: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    for b in bad:
        print("  " + b)
    if bad and not args.write:
        print(f"realmedia: {len(bad)} file(s) differ from {os.path.relpath(TABLE, ROOT)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
