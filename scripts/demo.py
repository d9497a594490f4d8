#!/usr/bin/env python3
"""Print the URL of the demo database `motovaultpro_demo`, creating and seeding it first if needed.

Used by `make backup` and `make dev` when DATABASE_URL is unset: the local PostgreSQL server
(or a throwaway cluster in .local/services), a small vehicle-records schema with sample rows,
and sample documents under DOCUMENTS_DIR (default ./data/documents).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import local_services  # noqa: E402

from backup_pipeline.postgres import client_env, with_database  # noqa: E402

DEMO_DB = "motovaultpro_demo"
SCHEMA = Path(__file__).resolve().parent / "demo_schema.sql"


def seed_database(url: str, scale: int = 1) -> None:
    conninfo, env = client_env(url)
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", f"scale={scale}",
                    "-d", conninfo, "-f", str(SCHEMA)], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def seed_documents(root: Path, users: int = 5) -> None:
    for user in range(1, users + 1):
        folder = root / str(user)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "registration.txt").write_text(f"Vehicle registration of user {user}\n" * 50)
        (folder / "service-history.csv").write_text(
            "date,item,cost\n" + "".join(f"2024-0{m}-01,oil change,{40 + m}\n"
                                         for m in range(1, 10)))
        (folder / "receipt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(30_000))


def main() -> int:
    server = local_services.find_or_start_postgres(Path(".local/services").absolute())
    with psycopg.connect(server, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                              (DEMO_DB,)).fetchone()
        if not exists:
            conn.execute(f"CREATE DATABASE {DEMO_DB}")
    url = with_database(server, DEMO_DB)
    if not exists:
        seed_database(url)
    docs = Path(os.environ.get("DOCUMENTS_DIR") or "data/documents")
    if not docs.exists() or not any(docs.iterdir()):
        seed_documents(docs)
    print(url.replace(" ", "%20") if "://" in url else _as_url(url))
    return 0


def _as_url(conninfo: str) -> str:
    params = dict(part.split("=", 1) for part in conninfo.split())
    return (f"postgresql://{params.get('user', 'postgres')}@{params.get('host', '127.0.0.1')}:"
            f"{params.get('port', '5432')}/{params['dbname']}")


if __name__ == "__main__":
    sys.exit(main())
