"""Uploading through encryption holds a bounded amount in memory whatever the archive's size:
a 300 MiB archive of random bytes, uploaded by the benchmark's worker in a process of its own
(its peak resident memory, VmHWM, is what is measured; moto's server is another process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from backup_pipeline_tests.conftest import REPO
from backup_pipeline_tests.offsite.conftest import CREDENTIALS, MotoServer, age_key, bucket_name

SIZE_MB = 300
BOUND_MB = 150


def test_peak_memory_of_a_large_upload_is_bounded(moto: MotoServer, tmp_path: Path):
    from benchmarks import offsite as bench

    bucket = bucket_name()
    moto.client().create_bucket(Bucket=bucket)
    archive = tmp_path / "archive.bin"
    bench.write_random(archive, SIZE_MB)
    key = age_key(tmp_path / "identity.txt")
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "offsite.py"), "--worker", "offsite",
         "--file", str(archive), "--endpoint", moto.url, "--recipient", key.recipient,
         "--bucket", bucket],
        capture_output=True, text=True, env={**CREDENTIALS, "PATH": "/usr/bin"}, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["object_bytes"] > SIZE_MB * 1024 * 1024  # the whole archive, encrypted
    assert result["peak_rss_mb"] < BOUND_MB, result
