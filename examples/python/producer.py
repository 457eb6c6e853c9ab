#!/usr/bin/env python3
"""A mediagate producer in Python: upload files, publish a job, wait for its verdict.

Follows the wire contract (docs/contract.md) with nothing but pika (AMQP 0-9-1) and boto3 (S3):
  * uploads each file to the source bucket (path-style addressing when an endpoint is given),
  * binds a private queue to the `mediagate.verdicts` topic exchange BEFORE publishing,
  * publishes the job to `mediagate.jobs` with routing key `upload`, persistent,
    application/json, message_id = job_id, with publisher confirms and `mandatory`,
  * treats a returned message (no queue bound to `mediagate.jobs` yet: the topology does not
    exist, run `mediagate ensure-topology`), a nack or a missing exchange as NOT published (exit 3):
    without `mandatory`, RabbitMQ confirms a message no queue takes and drops it,
  * prints the verdict whose correlation_id is the job id (exit 0), or exits 1 on a timeout.

Configuration comes from the same environment variables as the worker:
MEDIAGATE_AMQP_URL, MEDIAGATE_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
MEDIAGATE_SOURCE_BUCKETS (the first one is used).

    python producer.py photo.jpg other.png --recipient-age 16_17 --timeout 60
"""
import argparse
import json
import os
import sys
import time
import uuid

import boto3
import pika
import pika.exceptions
from botocore.config import Config


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+")
    p.add_argument("--kind", choices=["media", "voice_note"], default="media")
    p.add_argument("--sender-age", choices=["under_16", "16_17", "adult"], default="adult")
    p.add_argument("--recipient-age", choices=["under_16", "16_17", "adult"], action="append")
    p.add_argument("--nudity-filter", action="store_true")
    p.add_argument("--timeout", type=float, default=120.0)
    args = p.parse_args()

    amqp_url = os.environ.get("MEDIAGATE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
    endpoint = os.environ.get("MEDIAGATE_S3_ENDPOINT") or None
    bucket = os.environ.get("MEDIAGATE_SOURCE_BUCKETS", "incoming").split(",")[0].strip()

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"} if endpoint else {}),
    )
    job_id = f"py-{uuid.uuid4().hex}"
    items = []
    for i, path in enumerate(args.files):
        key = f"uploads/{job_id}/{i}{os.path.splitext(path)[1]}"
        with open(path, "rb") as f:
            s3.put_object(Bucket=bucket, Key=key, Body=f.read())
        items.append({"item_id": str(i), "source": {"bucket": bucket, "key": key}})

    job = {
        "schema": "mediagate.job.v1",
        "job_id": job_id,
        "kind": args.kind,
        "message": {"message_id": f"m-{job_id}", "conversation_id": "c-python", "first_contact": False},
        "sender": {"account_id": "py-sender", "age_band": args.sender_age},
        "recipients": [
            {"account_id": f"py-r{i}", "age_band": band, "nudity_filter": args.nudity_filter and band == "adult"}
            for i, band in enumerate(args.recipient_age or ["adult"])
        ],
        "items": items,
    }

    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    ch = conn.channel()
    # Producers never declare the worker's queues; a private queue for our own verdicts is fine.
    private = ch.queue_declare(queue="", exclusive=True, auto_delete=True).method.queue
    try:
        ch.queue_bind(queue=private, exchange="mediagate.verdicts", routing_key="verdict.*")
    except pika.exceptions.ChannelClosedByBroker as e:
        print(
            f"job {job_id} NOT published: {e.reply_code} {e.reply_text} (the topology does not exist yet; run "
            "`mediagate ensure-topology`)",
            file=sys.stderr,
        )
        return 3
    ch.confirm_delivery()
    try:
        # With confirms on, pika raises UnroutableError when the broker returns the message
        # (basic.return, 312 NO_ROUTE) and NackError when it nacks it; it returns once confirmed.
        ch.basic_publish(
            exchange="mediagate.jobs",
            routing_key="upload",
            body=json.dumps(job).encode(),
            properties=pika.BasicProperties(delivery_mode=2, content_type="application/json", message_id=job_id),
            mandatory=True,
        )
    except pika.exceptions.UnroutableError:
        print(
            f"job {job_id} NOT published: the broker returned it (no queue is bound to mediagate.jobs "
            "with key 'upload'); run `mediagate ensure-topology` and publish again",
            file=sys.stderr,
        )
        return 3
    except pika.exceptions.NackError:
        print(f"job {job_id} NOT published: the broker refused it (nack); publish again", file=sys.stderr)
        return 3
    except pika.exceptions.ChannelClosedByBroker as e:
        print(
            f"job {job_id} NOT published: {e.reply_code} {e.reply_text} (is the topology declared? run "
            "`mediagate ensure-topology`)",
            file=sys.stderr,
        )
        return 3
    print(f"published {job_id}", file=sys.stderr)

    deadline = time.monotonic() + args.timeout
    for method, props, body in ch.consume(private, auto_ack=True, inactivity_timeout=1.0):
        if method is not None and props.correlation_id == job_id:
            print(json.dumps(json.loads(body), indent=2))
            conn.close()
            return 0
        if time.monotonic() > deadline:
            print(f"no verdict for {job_id} within {args.timeout} s", file=sys.stderr)
            conn.close()
            return 1
    return 1


if __name__ == "__main__":
    sys.exit(main())
