"""One operation of ours in a fresh process, so the benchmark sees its memory and time alone.

    worker.py backup-service    a backup without Dagster (service.run_backup); the benchmark
                                runs the one with Dagster as a user does, `backup-pipeline
                                backup --json`
    worker.py restore-service   restore of backup RESTORE_BACKUP_ID (database and documents)
                                by the restore service's steps, all but the safety backup
    worker.py drill-service     restore drill of backup RESTORE_BACKUP_ID (drills.run_drill)

Configuration comes from the environment (DATABASE_URL, DOCUMENTS_DIR, BACKUP_DIR,
BACKUP_COMPRESSION_LEVEL, BACKUP_COMPRESSION_THREADS). Prints one JSON object: seconds of the
operation itself (imports done), and the archive it made.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def backup_service() -> dict:
    from backup_pipeline.backup import service
    from backup_pipeline.settings import Settings

    settings = Settings.from_env()
    started = time.perf_counter()
    row = service.run_backup(settings, trigger="benchmark")
    return {"seconds": time.perf_counter() - started,
            "archive_path": str(settings.backup_dir / row["file_name"]),
            "backup_id": str(row["id"]), "archive_bytes": row["size_bytes"]}


def restore_service() -> dict:
    """claim, verify, load_database, swap, finish: the steps of a real restore, in order,
    without its safety backup (the benchmark measures the restore itself; the safety backup
    is a backup, measured as such). Only the benchmark skips it: run_restore cannot."""
    import os

    from backup_pipeline.restore import service
    from backup_pipeline.settings import Settings

    settings = Settings.from_env()
    started = time.perf_counter()
    plan = service.claim(settings, os.environ["RESTORE_BACKUP_ID"], dry_run=False,
                         scope="both", trigger="benchmark")
    checked = service.verify(settings, plan)
    service.load_database(settings, plan, checked)
    service.swap(settings, plan)
    row = service.finish(settings, plan)
    seconds = time.perf_counter() - started
    if row["state"] != "completed":
        raise SystemExit(f"the restore ended {row['state']}: {row.get('error_message')}")
    return {"seconds": seconds, "restore_id": str(row["id"])}


def drill_service() -> dict:
    import os

    from backup_pipeline.drills.service import run_drill
    from backup_pipeline.settings import Settings

    settings = Settings.from_env()
    started = time.perf_counter()
    result = run_drill(settings, os.environ["RESTORE_BACKUP_ID"])
    seconds = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"the drill failed: {result.description}")
    return {"seconds": seconds, "rto_seconds": result.rto_seconds,
            "tables_checked": len(result.comparison.tables),
            "documents_checked": result.comparison.documents_checked}


OPERATIONS = {"backup-service": backup_service,
              "restore-service": restore_service, "drill-service": drill_service}


def main() -> None:
    started = time.perf_counter()
    operation = OPERATIONS[sys.argv[1]]
    result = operation()
    result["process_seconds"] = time.perf_counter() - started
    print(json.dumps(result))


if __name__ == "__main__":
    main()
