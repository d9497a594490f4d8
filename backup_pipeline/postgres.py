"""Connections to the application database, and the environment for its client programs.

Passwords never go on a command line: child processes get a conninfo without the password and
the password in PGPASSWORD, which only the same user can read. Errors never show it either:
libpq quotes a malformed URL in its messages, so every message about a connection or a URL
passes through `redact`.
"""

from __future__ import annotations

import os
import re
from urllib.parse import unquote

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from backup_pipeline.errors import ConfigError, UnavailableError

_URI = re.compile(r"^postgres(?:ql)?://", re.IGNORECASE)
_PASSWORD_PARAM = re.compile(r"(?:^|[?&\s])password\s*=\s*('(?:[^'\\]|\\.)*'?|[^&\s]*)",
                             re.IGNORECASE)
_QUOTED = re.compile(r'"([^"]*)"')  # libpq quotes the part of the URL it objects to
HIDDEN = "***"


def _password_spans(url: str) -> list[tuple[int, int]]:
    """Where a password may be in `url`, read leniently (the URL may be malformed): the
    user-info's part after its first ':' (up to the last '@') and every password= value."""
    spans = []
    scheme = _URI.match(url)
    if scheme:
        at = url.rfind("@")
        colon = url.find(":", scheme.end(), at) if at > 0 else -1
        if colon >= 0:
            spans.append((colon + 1, at))
    spans.extend(m.span(1) for m in _PASSWORD_PARAM.finditer(url) if m.group(1))
    return spans


def redact(text: str, url: str | None = None) -> str:
    """`text` (an error message) without the password of `url` (by default DATABASE_URL),
    however malformed the URL is: every copy of the password (raw or decoded) or of the URL is
    replaced, then any excerpt of the URL that libpq quoted and that touches the password."""
    url = os.environ.get("DATABASE_URL", "") if url is None else url
    spans = _password_spans(url) if url else []
    if not spans:
        return text
    secrets = {url} | {url[a:b].strip("'") for a, b in spans}
    secrets |= {unquote(s) for s in secrets}
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, HIDDEN)

    def hide_excerpt(match: re.Match) -> str:
        excerpt = match[1]
        touches = excerpt not in ("", HIDDEN) and any(
            a < found.end() and found.start() < b
            for found in re.finditer(re.escape(excerpt), url) for a, b in spans)
        return f'"{HIDDEN}" (in the password)' if touches else match[0]

    return _QUOTED.sub(hide_excerpt, text)


def parse_url(url: str) -> dict[str, str]:
    try:
        return {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
    except (psycopg.Error, ValueError) as exc:  # a bad %-escape may fail to decode (ValueError)
        raise ConfigError("DATABASE_URL is not a valid PostgreSQL URL: "
                          f"{one_line(exc, url)}") from None


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
    """A connection; any failure is a one-line error that names the database, never the
    password (libpq's own messages may quote the URL)."""
    kwargs.setdefault("connect_timeout", 10)
    where = describe(url)  # a malformed URL fails here, in words of our own
    try:
        return psycopg.connect(url, **kwargs)
    except psycopg.Error as exc:
        raise UnavailableError(f"cannot connect to {where}: {one_line(exc, url)}") from None


def one_line(exc: BaseException, url: str | None = None) -> str:
    """The error's message on one line, without the password of `url` (default
    DATABASE_URL)."""
    text = redact(" ".join(str(exc).split()), url)
    return text or type(exc).__name__


def server_version(conn: psycopg.Connection) -> str:
    row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else ""
