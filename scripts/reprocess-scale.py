"""`make reprocess-scale`: `mediagate reprocess --since` over a large history (issue 25, item 5).

1. Starts a fresh local S3 (the tests' s3s-fs) on a temporary folder.
2. Lays HISTORY manifests down directly as files (not through a worker), one every 30 s of
   processed_at over the past, with their §4 index objects — written here from the layout in
   README "Reprocessing at scale", an implementation independent of the Rust one — and
   `manifests-index/complete-since`. With HISTORY <= BACKFILL_MAX the index is instead written by
   `mediagate reprocess --backfill-index` (through S3), timed and its requests counted.
3. Runs SELECTED small-photo jobs through a real worker (its own vhost on the local RabbitMQ).
4. Times `mediagate reprocess --dry-run --since T` (T = just before those jobs) through a proxy
   that counts every S3 request, and checks it selected exactly those jobs.

Prints the figures with the load average. Needs .tools/bin/s3s-fs, target/release/mediagate,
RabbitMQ on 127.0.0.1:5672 (guest/guest) and .local/venv-examples (pika, boto3): `make
reprocess-scale` provides them.
"""
import argparse
import asyncio
import datetime as dt
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import boto3
import pika
from botocore.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
S3FS = os.path.join(ROOT, ".tools/bin/s3s-fs")
BIN = os.path.join(ROOT, "target/release/mediagate")
AK, SK = "scale", "scale-secret"
STATUSES = ["cleared", "cleared", "cleared", "partial", "rejected", "blocked", "failed"]


def die(msg):
    print(f"reprocess-scale: {msg}", file=sys.stderr)
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, what, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    die(f"{what} did not listen on {port}")


class Counter:
    """An HTTP/1.1 proxy that counts requests by kind (LIST, GET, PUT, HEAD, DELETE, other)."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.counts = {}
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self.serve(), self.loop).result()

    def reset(self):
        self.counts = {}

    async def serve(self):
        self.server = await asyncio.start_server(self.client, "127.0.0.1", self.port)

    async def client(self, cr, cw):
        ur, uw = await asyncio.open_connection("127.0.0.1", self.upstream)

        async def back():
            try:
                while data := await ur.read(65536):
                    cw.write(data)
                    await cw.drain()
            finally:
                cw.close()

        task = asyncio.ensure_future(back())
        try:
            while True:
                head = await cr.readuntil(b"\r\n\r\n")
                line, *headers = head.decode("latin-1").split("\r\n")
                method, target = line.split(" ")[:2]
                kind = method
                if method == "GET" and "list-type=2" in target:
                    kind = "LIST"
                self.counts[kind] = self.counts.get(kind, 0) + 1
                length = 0
                for h in headers:
                    if h.lower().startswith("content-length:"):
                        length = int(h.split(":", 1)[1])
                body = await cr.readexactly(length) if length else b""
                uw.write(head + body)
                await uw.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            uw.close()
            task.cancel()


def manifest(job_id, processed_at, status, revision=0):
    job = {
        "schema": "mediagate.job.v1",
        "job_id": job_id,
        "kind": "media",
        "message": {"message_id": f"m-{job_id}", "conversation_id": "c-scale", "first_contact": False},
        "sender": {"account_id": "a-1", "age_band": "adult"},
        "recipients": [{"account_id": "a-2", "age_band": "adult", "nudity_filter": False}],
        "items": [{"item_id": "0", "source": {"bucket": "incoming", "key": f"{job_id}/0.jpg"}}],
    }
    verdict = {
        "schema": "mediagate.verdict.v1",
        "job_id": job_id,
        "message_id": f"m-{job_id}",
        "conversation_id": "c-scale",
        "status": status,
        "reason": None,
        "reprocess": False,
        "revision": revision,
        "items": [],
        "processed_at": processed_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "worker": {"id": "scale", "version": "laid-down"},
    }
    return {"job": job, "verdict": verdict}


def stamp(t):
    return t.strftime("%Y%m%dT%H%M%SZ")


def lay_down(bucket_dir, n, newest, with_index):
    """n manifests, one every 30 s before `newest`, as files; their index objects too."""
    mdir = os.path.join(bucket_dir, "manifests")
    os.makedirs(mdir, exist_ok=True)
    made_dirs = set()
    earliest = None
    for i in range(n):
        t = newest - dt.timedelta(seconds=30 * (n - i))
        job_id = f"h-{i:07d}"
        status = STATUSES[i % len(STATUSES)]
        with open(os.path.join(mdir, f"{job_id}.json"), "w") as f:
            json.dump(manifest(job_id, t, status), f)
        earliest = t if earliest is None else min(earliest, t)
        if with_index:
            s = stamp(t)
            hour_dir = os.path.join(bucket_dir, "manifests-index", "t", s[:11])
            ptr_dir = os.path.join(bucket_dir, "manifests-index", "j", job_id)
            for d in (hour_dir, ptr_dir):
                if d not in made_dirs:
                    os.makedirs(d, exist_ok=True)
                    made_dirs.add(d)
            open(os.path.join(hour_dir, f"{s}!{job_id}!0!{status}"), "w").close()
            open(os.path.join(ptr_dir, f"{s}!0"), "w").close()
        if i % 100000 == 0 and i:
            print(f"  laid down {i} manifests", file=sys.stderr)
    if with_index:
        with open(os.path.join(bucket_dir, "manifests-index", "complete-since"), "w") as f:
            f.write(earliest.strftime("%Y-%m-%dT%H:%M:%SZ"))


def tiny_jpeg():
    """A 64×48 JPEG made by the ffmpeg CLI (a test pattern)."""
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=s=64x48:d=1", "-frames:v", "1", "-f", "mjpeg", "-"],
        check=True,
        capture_output=True,
    )
    return out.stdout


def run_mediagate(env, args):
    start = time.monotonic()
    out = subprocess.run([BIN, *args], env=env, capture_output=True, text=True)
    took = time.monotonic() - start
    if out.returncode != 0:
        die(f"mediagate {' '.join(args)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return out, took


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--history", type=int, default=int(os.environ.get("HISTORY", 999_000)))
    p.add_argument("--selected", type=int, default=int(os.environ.get("SELECTED", 1000)))
    p.add_argument("--backfill-max", type=int, default=int(os.environ.get("BACKFILL_MAX", 20_000)))
    args = p.parse_args()
    for path, what in ((S3FS, "the local S3 server (make deps)"), (BIN, "the mediagate binary (make build)")):
        if not os.access(path, os.X_OK):
            die(f"{path} is missing: {what}")

    work = tempfile.mkdtemp(prefix="mediagate-scale-")
    root = os.path.join(work, "s3")
    for b in ("incoming", "media", "quarantine"):
        os.makedirs(os.path.join(root, b))
    backfill = args.history <= args.backfill_max
    newest = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=1)
    t0 = time.monotonic()
    lay_down(os.path.join(root, "media"), args.history, newest, with_index=not backfill)
    print(f"laid down {args.history} manifests{'' if backfill else ' and their index'} in {time.monotonic() - t0:.0f} s",
          file=sys.stderr)

    s3_port = free_port()
    s3 = subprocess.Popen(
        [S3FS, "--host", "127.0.0.1", "--port", str(s3_port), "--access-key", AK, "--secret-key", SK, root],
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(work, "s3.log"), "w"),
    )
    procs = [s3]
    vhost = f"mediagate-scale-{os.getpid()}"
    try:
        wait_port(s3_port, "s3s-fs")
        counter = Counter(s3_port)
        endpoint = f"http://127.0.0.1:{counter.port}"
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True)
        subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"], check=True)
        amqp = f"amqp://guest:guest@127.0.0.1:5672/{urllib.parse.quote(vhost, safe='')}"
        env = dict(
            os.environ,
            MEDIAGATE_AMQP_URL=amqp,
            MEDIAGATE_S3_ENDPOINT=endpoint,
            AWS_ACCESS_KEY_ID=AK,
            AWS_SECRET_ACCESS_KEY=SK,
            AWS_REGION="us-east-1",
            MEDIAGATE_CONCURRENCY="2",
            MEDIAGATE_METRICS_ADDR=f"127.0.0.1:{free_port()}",
            MEDIAGATE_LOG_FORMAT="text",
            RUST_LOG="info",
        )
        report = []
        if backfill:
            counter.reset()
            out, took = run_mediagate(env, ["reprocess", "--backfill-index"])
            report.append(f"backfill of {args.history} manifests: {took:.1f} s, S3 requests {dict(counter.counts)}")
            print(out.stderr.strip().splitlines()[-1], file=sys.stderr)

        # The newest jobs, through a real worker.
        s3c = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3_port}", aws_access_key_id=AK,
                           aws_secret_access_key=SK, region_name="us-east-1",
                           config=Config(s3={"addressing_style": "path"}))
        s3c.put_object(Bucket="incoming", Key="scale/0.jpg", Body=tiny_jpeg())
        worker = subprocess.Popen([BIN, "worker"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=open(os.path.join(work, "worker.log"), "w"))
        procs.append(worker)
        conn = pika.BlockingConnection(pika.URLParameters(amqp))
        ch = conn.channel()
        for _ in range(600):
            try:
                ch.queue_declare(queue="mediagate.verdicts", passive=True)
                break
            except pika.exceptions.ChannelClosedByBroker:
                ch = conn.channel()
                time.sleep(0.1)
        since = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        time.sleep(1.0)
        ch.confirm_delivery()
        ids = [f"new-{i:05d}" for i in range(args.selected)]
        for job_id in ids:
            body = manifest(job_id, since, "cleared")["job"]
            body["items"][0]["source"]["key"] = "scale/0.jpg"
            ch.basic_publish("mediagate.jobs", "upload", json.dumps(body).encode(),
                             pika.BasicProperties(delivery_mode=2, content_type="application/json", message_id=job_id),
                             mandatory=True)
        seen = set()
        t0 = time.monotonic()
        for method, props, _ in ch.consume("mediagate.verdicts", inactivity_timeout=5.0):
            if method is None:
                if time.monotonic() - t0 > 600:
                    die(f"only {len(seen)} of {args.selected} verdicts after 600 s")
                continue
            ch.basic_ack(method.delivery_tag)
            seen.add(props.correlation_id)
            if len(seen) >= args.selected:
                break
        ch.cancel()
        conn.close()
        worker.terminate()
        worker.wait(timeout=60)
        print(f"{args.selected} jobs through the worker in {time.monotonic() - t0:.1f} s", file=sys.stderr)

        time.sleep(1.1)  # a run selects what was processed before the second it began
        counter.reset()
        out, took = run_mediagate(env, ["reprocess", "--dry-run", "--since", since.strftime("%Y-%m-%dT%H:%M:%SZ")])
        selected = sorted(out.stdout.split())
        if selected != sorted(ids):
            die(f"selected {len(selected)} jobs, not the {len(ids)} new ones: {selected[:5]}…\n{out.stderr}")
        requests = dict(counter.counts)
        load = open("/proc/loadavg").read().split()[:3]
        report.append(
            f"reprocess --dry-run --since T over {args.history + args.selected} manifests: selected the {len(ids)} "
            f"newest in {took:.2f} s; S3 requests {requests} (total {sum(requests.values())})"
        )
        report.append(f"  its summary: {out.stderr.strip().splitlines()[-1]}")
        report.append(f"load average {' '.join(load)}")
        print("\n".join(report))
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
