"""Fixtures of the restore tests."""

from __future__ import annotations

import secrets

import psycopg
import pytest

from backup_pipeline.postgres import with_database


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
