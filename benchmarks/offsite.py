#!/usr/bin/env python3
"""Benchmark of the offsite upload: age encryption streamed into a multipart upload, against a
plain boto3 `upload_file` of the same bytes to the same S3 server.

    .venv/bin/python benchmarks/offsite.py --size-mb 2048 --repeat 3

Starts moto's standalone server on loopback (or uses --endpoint), writes a file of random
bytes (an archive is incompressible too), then runs the two uploads interleaved, each in a
process of its own, and reports the medians, their ratio and each process's peak resident
memory (VmHWM). The server's memory is not counted: moto keeps objects in its own process,
which is why each object is deleted right after its upload.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BUCKET = "bp-benchmark"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret",
               "AWS_REGION": "us-east-1"}


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def worker(mode: str, path: Path, endpoint: str, recipient: str, bucket: str = BUCKET) -> dict:
    """One upload in this process; the time and this process's peak memory."""
    import boto3

    from backup_pipeline.offsite import config, storage

    key = f"{mode}/{path.name}"
    if mode == "plain":
        client = boto3.session.Session().client("s3", endpoint_url=endpoint)
        started = time.perf_counter()
        client.upload_file(str(path), bucket, key)
        seconds = time.perf_counter() - started
    else:
        target = config.from_env({"OFFSITE_URL": f"s3://{bucket}", "S3_ENDPOINT_URL": endpoint,
                                  "AWS_REGION": CREDENTIALS["AWS_REGION"],
                                  "OFFSITE_AGE_RECIPIENTS": recipient})
        client = storage.make_client(target)
        row = {"id": "benchmark", "backup_type": "manual", "started_at": "now"}
        started = time.perf_counter()
        storage.upload(client, target, path, key, row)
        seconds = time.perf_counter() - started
    size = client.head_object(Bucket=bucket, Key=key)["ContentLength"]
    client.delete_object(Bucket=bucket, Key=key)
    return {"mode": mode, "seconds": seconds, "object_bytes": size, "peak_rss_mb": peak_rss_mb()}


def run_worker(mode: str, path: Path, endpoint: str, recipient: str) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--worker", mode, "--file", str(path), "--endpoint", endpoint,
         "--recipient", recipient], capture_output=True, text=True,
        env={**os.environ, **CREDENTIALS}, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} upload failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def write_random(path: Path, size_mb: int) -> None:
    with open(path, "wb") as out:
        for _ in range(size_mb):
            out.write(secrets.token_bytes(1024 * 1024))


def start_moto(log: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open(log, "wb") as out:
        process = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H",
                                    "127.0.0.1", "-p", str(port)], stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return process, url
        time.sleep(0.1)
    raise RuntimeError("moto_server did not start")


def recipient_key(folder: Path) -> str:
    done = subprocess.run(["age-keygen", "-o", str(folder / "identity.txt")],
                          capture_output=True, text=True, check=True)
    return done.stderr.strip().rpartition(" ")[2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--endpoint", help="an S3 server to use instead of a moto_server")
    parser.add_argument("--dir", help="where the test file goes (default: a temp folder)")
    parser.add_argument("--worker", choices=["plain", "offsite"], help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--recipient", help=argparse.SUPPRESS)
    parser.add_argument("--bucket", default=BUCKET, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.file), args.endpoint, args.recipient,
                                args.bucket)))
        return 0

    import boto3

    folder = Path(tempfile.mkdtemp(prefix="bp-offsite-bench-", dir=args.dir))
    moto = None
    try:
        endpoint = args.endpoint
        if endpoint is None:
            moto, endpoint = start_moto(folder / "moto.log")
        os.environ.update(CREDENTIALS)
        client = boto3.session.Session().client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket=BUCKET)
        recipient = recipient_key(folder)
        path = folder / "archive.bin"
        print(f"writing {args.size_mb} MiB of random bytes", file=sys.stderr)
        write_random(path, args.size_mb)
        runs: dict[str, list[dict]] = {"plain": [], "offsite": []}
        for i in range(args.repeat):
            for mode in ("plain", "offsite"):
                result = run_worker(mode, path, endpoint, recipient)
                runs[mode].append(result)
                print(f"  {i + 1}/{args.repeat} {mode}: {result['seconds']:.2f} s, peak "
                      f"{result['peak_rss_mb']:.0f} MiB", file=sys.stderr)
        plain = statistics.median(r["seconds"] for r in runs["plain"])
        ours = statistics.median(r["seconds"] for r in runs["offsite"])
        report = {
            "size_mb": args.size_mb, "repeat": args.repeat,
            "plain_upload_file_seconds": round(plain, 2),
            "encrypt_and_upload_seconds": round(ours, 2),
            "ratio": round(ours / plain, 3),
            "encrypt_and_upload_peak_rss_mb": round(max(r["peak_rss_mb"]
                                                        for r in runs["offsite"]), 1),
            "plain_upload_file_peak_rss_mb": round(max(r["peak_rss_mb"]
                                                       for r in runs["plain"]), 1),
            "targets": {"ratio": 1.3, "peak_rss_mb": 150},
        }
        print(json.dumps(report, indent=2))
    finally:
        if moto is not None:
            os.killpg(moto.pid, signal.SIGTERM)
            moto.wait()
        for child in folder.glob("*"):
            child.unlink()
        folder.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
