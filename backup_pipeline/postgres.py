"""Connections to the application database, and the environment for its client programs.

Passwords never go on a command line: child processes get a conninfo without the password and
the password in PGPASSWORD, which only the same user can read.
"""

from __future__ import annotations

import os

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from backup_pipeline.errors import ConfigError, UnavailableError


def parse_url(url: str) -> dict[str, str]:
    try:
        return {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"DATABASE_URL is not a valid PostgreSQL URL: {exc}") from None


def describe(url: str) -> str:
    """A loggable name for the database: user@host:port/dbname, never the password."""
    p = parse_url(url)
    host = p.get("host", "localhost")
    return f"{p.get('user', '')}@{host}:{p.get('port', '5432')}/{p.get('dbname', '')}".lstrip("@")


def database_name(url: str) -> str:
    return parse_url(url).get("dbname", "")


def with_database(url: str, dbname: str) -> str:
    """The same server and credentials, another database."""
    params = parse_url(url)
    params["dbname"] = dbname
    return make_conninfo(**params)


def client_env(url: str) -> tuple[str, dict[str, str]]:
    """(conninfo without password, environment) for pg_dump or psql."""
    params = parse_url(url)
    password = params.pop("password", None)
    env = dict(os.environ)
    for leaked in ("PGPASSWORD", "DATABASE_URL"):
        env.pop(leaked, None)
    if password is not None:
        env["PGPASSWORD"] = password
    env.setdefault("PGCONNECT_TIMEOUT", "10")
    return make_conninfo(**params), env


def connect(url: str, **kwargs) -> psycopg.Connection:
    kwargs.setdefault("connect_timeout", 10)
    try:
        return psycopg.connect(url, **kwargs)
    except psycopg.OperationalError as exc:
        raise UnavailableError(f"cannot connect to {describe(url)}: {one_line(exc)}") from None



def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def server_version(conn: psycopg.Connection) -> str:
    row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else ""
