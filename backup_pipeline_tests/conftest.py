"""The test harness: real PostgreSQL and Redis, throwaway databases, keys and folders.

The servers on 127.0.0.1 are used when they answer; otherwise scripts/local_services.py starts
a throwaway cluster and redis-server for this run and stops them at the end.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from backup_pipeline.catalog.migrate import migrate
from backup_pipeline.postgres import with_database
from backup_pipeline.settings import Settings

REPO = Path(__file__).resolve().parent.parent
# pagila (its licence beside it) comes with the repository: a clone alone runs the suite.
PAGILA_DIR = Path(__file__).resolve().parent / "fixtures" / "pagila"
RUN_TAG = secrets.token_hex(3)

_spec = importlib.util.spec_from_file_location("local_services",
                                               REPO / "scripts" / "local_services.py")
local_services = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(local_services)


@pytest.fixture(scope="session")
def services_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bp-services-"))
    yield path
    local_services.stop(path)
    shutil.rmtree(path, ignore_errors=True)


def _service(start, services_dir: Path) -> str:
    try:
        return start(services_dir)
    except local_services.ServiceError as exc:
        pytest.exit(str(exc), returncode=1)


@pytest.fixture(scope="session")
def pg_server_url(services_dir: Path) -> str:
    """URL of the server's `postgres` database, as a superuser."""
    return _service(local_services.find_or_start_postgres, services_dir)


@pytest.fixture(scope="session")
def redis_url(services_dir: Path) -> str:
    return _service(local_services.find_or_start_redis, services_dir)


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of this test's own; tests delete what they make under it."""
    return f"bp-test-{RUN_TAG}-{secrets.token_hex(4)}:"


class DatabaseFactory:
    """Creates databases named bp_test_<run>_<n> and drops them all at the end of the run."""

    def __init__(self, server_url: str):
        self.server_url = server_url
        self.created: list[str] = []

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(self.server_url, autocommit=True)

    def create(self, template: str | None = None) -> str:
        name = f"bp_test_{RUN_TAG}_{len(self.created)}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"'
                         + (f' TEMPLATE "{template}"' if template else ""))
        self.created.append(name)
        return with_database(self.server_url, name)

    def drop_all(self) -> None:
        with self.admin() as conn:
            for name in reversed(self.created):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                # a restore may leave renamed siblings behind on failure paths
                for (other,) in conn.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE %s",
                    (name + "\\_%",),
                ).fetchall():
                    conn.execute(f'DROP DATABASE IF EXISTS "{other}" WITH (FORCE)')


@pytest.fixture(scope="session")
def databases(pg_server_url: str) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(pg_server_url)
    yield factory
    factory.drop_all()


def psql(url: str, *args: str, input: str | None = None) -> str:
    """Run psql against url (ON_ERROR_STOP); the password, if any, goes via the environment."""
    from backup_pipeline.postgres import client_env

    conninfo, env = client_env(url)
    done = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", conninfo, *args],
                          input=input, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"psql failed: {done.stderr.strip()}")
    return done.stdout


@pytest.fixture(scope="session")
def pagila_template(databases: DatabaseFactory) -> str:
    """A database with pagila loaded, used as a template (CREATE DATABASE ... TEMPLATE)."""
    url = databases.create()
    psql(url, "-f", str(PAGILA_DIR / "pagila-schema.sql"))
    psql(url, "-f", str(PAGILA_DIR / "pagila-data.sql"))
    return databases.created[-1]


@pytest.fixture
def pagila_url(databases: DatabaseFactory, pagila_template: str) -> str:
    """A fresh copy of pagila for this test."""
    return databases.create(template=pagila_template)


def make_documents(root: Path) -> Path:
    """A small documents tree: text, binary, already-compressed, nested, unicode, empty."""
    files = {
        "1001/invoice-2024.txt": b"Invoice 2024\n" * 200,
        "1001/receipts/fuel.csv": b"date,litres\n" + b"2024-01-01,40\n" * 500,
        "1001/photo.jpg": bytes.fromhex("ffd8ffe0") + secrets.token_bytes(50_000),
        "1002/Fahrzeugschein \u00fc.pdf": b"%PDF-1.4\n" + secrets.token_bytes(20_000),
        "1002/empty.txt": b"",
        "1003/archive.zip": b"PK\x03\x04" + secrets.token_bytes(5_000),
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


@dataclass
class AppEnv:
    """One application under test: its database (catalog migrated), documents and backups."""

    database_url: str
    documents_dir: Path
    backup_dir: Path
    dagster_home: Path

    @property
    def settings(self) -> Settings:
        return Settings(self.database_url, self.documents_dir, self.backup_dir)

    def environ(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "DOCUMENTS_DIR": str(self.documents_dir),
            "BACKUP_DIR": str(self.backup_dir),
            "DAGSTER_HOME": str(self.dagster_home),
        }


def make_dagster_home(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return path


@pytest.fixture
def app_env(tmp_path: Path, pagila_url: str, monkeypatch: pytest.MonkeyPatch) -> AppEnv:
    """pagila plus documents, the catalog migrated, and the process environment pointing at it."""
    migrate(pagila_url)
    env = AppEnv(
        database_url=pagila_url,
        documents_dir=make_documents(tmp_path / "documents"),
        backup_dir=tmp_path / "backups",
        dagster_home=make_dagster_home(tmp_path / "dagster_home"),
    )
    for key, value in env.environ().items():
        if os.environ.get(key) != value:
            monkeypatch.setenv(key, value)
    return env


def role_exists(conn, role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() \
        is not None


@pytest.fixture
def make_role(pg_server_url):
    """Roles of this test (random names), dropped at its end with what they own in this run's
    databases."""
    made: list[str] = []

    def make(prefix: str, *attributes: str) -> str:
        name = f"bp_{prefix}_{secrets.token_hex(4)}"
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(f'CREATE ROLE "{name}" ' + " ".join(attributes or ("NOLOGIN",)))
        made.append(name)
        return name

    yield make
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        names = [r[0] for r in conn.execute(
            "SELECT d.datname FROM pg_database d WHERE d.datallowconn AND EXISTS ("
            " SELECT 1 FROM pg_shdepend s JOIN pg_roles r ON r.oid = s.refobjid"
            " WHERE s.dbid = d.oid AND r.rolname = ANY(%s))", (made,))]
        for db in names:
            with psycopg.connect(with_database(pg_server_url, db), autocommit=True) as c:
                for role in made:
                    if role_exists(c, role):
                        c.execute(f'REASSIGN OWNED BY "{role}" TO CURRENT_USER;'
                                  f' DROP OWNED BY "{role}"')
        for role in made:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')
