"""The PostgreSQL side of a restore: a new database beside the live one, loaded by psql in one
transaction that only we commit, the catalog carried across, and the names swapped in one
transaction.

The live database is never written to except its catalog rows; until the rename commits it is
exactly as it was, and a failure only has to drop the new database.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

import psycopg
from psycopg import sql

from backup_pipeline.backup.dump import CATALOG_SCHEMA, _stderr_summary, _widen_pipe
from backup_pipeline.postgres import client_env, one_line, parse_url, with_database
from backup_pipeline.restore.errors import RestoreError
from backup_pipeline.settings import Settings

MAINTENANCE_DATABASES = ("postgres", "template1")
MAX_NAME_BYTES = 63
END_CONNECTIONS_TIMEOUT = 30.0
CATALOG_LOCK_TIMEOUT = "30s"
_LIST_SETTINGS = {"search_path", "temp_tablespaces", "session_preload_libraries",
                  "local_preload_libraries"}
_DATABASE_PRIVILEGES = {"CONNECT", "CREATE", "TEMPORARY"}
# Held by a restore from closing the live database to new connections until its rename is
# over (on the maintenance database, where the restore's admin session is).
_SWAP_LOCK_CLASS = 0x62707377  # 'bpsw'


def sibling_name(live: str, kind: str, restore_id: str) -> str:
    """`<live>_<kind>_<8 hex>`, the live name shortened (whole characters) to fit 63 bytes."""
    suffix = f"_{kind}_{restore_id.replace('-', '')[:8]}"
    base = live.encode()[: MAX_NAME_BYTES - len(suffix)].decode("utf-8", "ignore")
    return base + suffix


def admin_connect(url: str) -> psycopg.Connection:
    """An autocommit connection to the server's maintenance database (not the live one, which
    must have no sessions when it is renamed)."""
    last: Exception | None = None
    for name in MAINTENANCE_DATABASES:
        try:
            return psycopg.connect(with_database(url, name), autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            last = exc
    names = ", ".join(MAINTENANCE_DATABASES)
    raise RestoreError(f"cannot connect to a maintenance database ({names}) on the server: "
                       f"{one_line(last, url)}")


def exists(admin: psycopg.Connection, name: str) -> bool:
    return admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() \
        is not None


def create_database_like(admin: psycopg.Connection, live: str, new: str) -> None:
    """CREATE DATABASE `new` with the live one's owner, encoding, locale, connection limit,
    privileges, settings and comment (the parts of a database that pg_dump leaves out)."""
    row = admin.execute(
        "SELECT to_jsonb(d) - 'datacl', pg_get_userbyid(d.datdba),"
        " pg_encoding_to_char(d.encoding), shobj_description(d.oid, 'pg_database'),"
        " d.datacl IS NULL FROM pg_database d WHERE d.datname = %s", (live,)).fetchone()
    if row is None:
        raise RestoreError(f"database {live!r} does not exist")
    info, owner, encoding, comment, default_acl = row
    statement = sql.SQL(
        "CREATE DATABASE {} TEMPLATE template0 OWNER {} ENCODING {} LC_COLLATE {} LC_CTYPE {}"
        " CONNECTION LIMIT {}"
    ).format(sql.Identifier(new), sql.Identifier(owner), sql.Literal(encoding),
             sql.Literal(info["datcollate"]), sql.Literal(info["datctype"]),
             sql.Literal(int(info["datconnlimit"])))
    provider = info.get("datlocprovider")
    locale = info.get("daticulocale") or info.get("datlocale")
    if provider == "i":
        statement += sql.SQL(" LOCALE_PROVIDER icu ICU_LOCALE {}").format(sql.Literal(locale))
    elif provider == "b":
        statement += sql.SQL(" LOCALE_PROVIDER builtin BUILTIN_LOCALE {}").format(
            sql.Literal(locale))
    admin.execute(statement)
    _copy_properties(admin, live, new, comment, default_acl)


def reset_database_like(admin: psycopg.Connection, live: str, new: str) -> None:
    """The new database's connection limit, privileges, settings and comment made the live
    one's again, whatever a dump loaded by its owner set on it (its owner must be the live
    database's owner already)."""
    row = admin.execute(
        "SELECT d.datconnlimit, shobj_description(d.oid, 'pg_database'), d.datacl IS NULL"
        " FROM pg_database d WHERE d.datname = %s", (live,)).fetchone()
    if row is None:
        raise RestoreError(f"database {live!r} does not exist")
    limit, comment, default_acl = row
    target = sql.Identifier(new)
    admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true IS_TEMPLATE false"
                          " CONNECTION LIMIT {}").format(target, sql.Literal(int(limit))))
    admin.execute(sql.SQL("ALTER DATABASE {} RESET ALL").format(target))
    for (role,) in admin.execute(
            "SELECT DISTINCT pg_get_userbyid(s.setrole) FROM pg_db_role_setting s"
            " JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = %s"
            " AND s.setrole <> 0", (new,)).fetchall():
        admin.execute(sql.SQL("ALTER ROLE {} IN DATABASE {} RESET ALL").format(
            sql.Identifier(role), target))
    for (grantee,) in admin.execute(
            "SELECT DISTINCT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee)"
            " END FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = %s"
            " AND a.grantee <> d.datdba", (new,)).fetchall():
        admin.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM {} CASCADE").format(
            target, sql.SQL("PUBLIC") if grantee is None else sql.Identifier(grantee)))
    if default_acl:
        admin.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO PUBLIC").format(
            target))
    admin.execute(sql.SQL("COMMENT ON DATABASE {} IS NULL").format(target))
    _copy_properties(admin, live, new, comment, default_acl)


def _copy_properties(admin: psycopg.Connection, live: str, new: str, comment: str | None,
                     default_acl: bool) -> None:
    """The live database's privileges, settings and comment onto the new one."""
    target = sql.Identifier(new)
    if not default_acl:
        admin.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(target))
        for grantee, privilege, grantable in admin.execute(
                "SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END,"
                " a.privilege_type, a.is_grantable"
                " FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = %s",
                (live,)).fetchall():
            if privilege not in _DATABASE_PRIVILEGES:
                continue
            admin.execute(sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                sql.SQL(privilege), target,
                sql.SQL("PUBLIC") if grantee is None else sql.Identifier(grantee),
                sql.SQL(" WITH GRANT OPTION" if grantable else "")))
    for role, setting in admin.execute(
            "SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END,"
            " unnest(s.setconfig) FROM pg_db_role_setting s"
            " JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = %s",
            (live,)).fetchall():
        name, _, value = setting.partition("=")
        # list settings are stored already quoted by the server, the others as plain text
        value_sql = sql.SQL(value) if name.lower() in _LIST_SETTINGS else sql.Literal(value)
        prefix = (sql.SQL("ALTER DATABASE {}").format(target) if role is None else
                  sql.SQL("ALTER ROLE {} IN DATABASE {}").format(sql.Identifier(role), target))
        admin.execute(prefix + sql.SQL(" SET {} TO ").format(sql.Identifier(name)) + value_sql)
    if comment is not None:
        admin.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(target, sql.Literal(comment)))


def drop(admin: psycopg.Connection, name: str) -> None:
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


class PsqlLoader:
    """psql -X -v ON_ERROR_STOP=1 on the new database, fed SQL on stdin by `write` as it is
    checked, inside a transaction that `begin` opens and only `finish` commits (an explicit
    COMMIT, written once everything is checked). Not --single-transaction: psql then commits
    whenever its input ends, also when the process feeding it dies part-way. Here input that
    ends without our COMMIT ends the session, and the server rolls the transaction back;
    `abort` kills psql, with the same effect (the database is the caller's to drop). After the
    COMMIT psql prints a token the SQL cannot know, so a COMMIT that the input swallowed (an
    unended COPY block or string) is not taken for one that ran.

    `begin(restricted=True)`, called before the first write: psql runs restricted to SQL by a
    key the dump cannot know (the dump's own `\\restrict`/`\\unrestrict` lines are left out by
    the caller), so a meta-command that got past the scanner stops psql instead of running.
    Needs a psql that knows `\\restrict` (15.14, 16.10, 17.6 and later)."""

    def __init__(self, settings: Settings, target_url: str, stderr_path: Path) -> None:
        conninfo, env = client_env(target_url)
        cmd = [settings.pg_tool("psql"), "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1",
               "-d", conninfo, "-f", "-"]
        self.restricted: bool | None = None
        self.url = target_url
        self.deferred: list[bytes] = []  # to run after the commit (restore.roles.RoleSetup)
        self.failure = "loading the dump failed, nothing was changed"
        self._stderr_path = stderr_path
        self._stdout_path = stderr_path.with_suffix(".stdout")
        self._err = open(stderr_path, "wb")  # noqa: SIM115 - closed by abort
        try:
            with open(self._stdout_path, "wb") as out:
                self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=out,
                                             stderr=self._err, env=env)
        except OSError as exc:
            self._err.close()
            raise RestoreError(f"cannot start psql: {exc.strerror}") from None
        _widen_pipe(self.proc.stdin)  # psql reads on while the next chunk is checked

    def begin(self, restricted: bool) -> None:
        self.restricted = restricted
        if restricted:
            self.write(f"\\restrict {secrets.token_hex(24)}\n".encode())
        self.write(b"BEGIN;\n")

    def write(self, data: bytes) -> None:
        if self.restricted is None:
            raise RestoreError("internal error: psql was given SQL before begin()")
        try:
            self.proc.stdin.write(data)
        except BrokenPipeError:  # psql stopped early: its exit code and stderr say why
            self._raise_failure(self.proc.wait())

    def finish(self) -> None:
        """Commit, end of input: psql exits. Raises if it failed or did not commit."""
        token = f"committed-{secrets.token_hex(16)}"
        try:
            self.write(f"COMMIT;\nSELECT '{token}';\n".encode())
            with suppress(BrokenPipeError):
                self.proc.stdin.close()
            returncode = self.proc.wait()
        finally:
            self.abort()
        if returncode != 0:
            self._raise_failure(returncode)
        with open(self._stdout_path, "rb") as out:
            out.seek(max(0, out.seek(0, 2) - 4096))
            if token.encode() not in out.read():
                raise RestoreError(f"{self.failure}: the input did not end where a dump ends "
                                   "(its COMMIT was read as part of it)")

    def abort(self) -> None:
        """Kill psql before its input ends (so it never commits); harmless once it exited."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        with suppress(OSError):
            self.proc.stdin.close()
        self._err.close()

    def _raise_failure(self, returncode: int) -> None:
        detail = _stderr_summary(self._stderr_path) or f"exit code {returncode}"
        raise RestoreError(f"{self.failure}: {detail}")


def copy_catalog(settings: Settings, live_url: str, target_url: str, work_dir: Path) -> None:
    """pg_dump of schema `backup` from the live database, loaded into the new one by a
    PsqlLoader: committed only once pg_dump has ended well, so a restore that dies part-way
    leaves no partial catalog committed (psql --single-transaction fed by pg_dump directly
    would commit whatever it read when pg_dump died)."""
    live_conninfo, live_env = client_env(live_url)
    dump_err = work_dir / "catalog-dump.stderr"
    loader = PsqlLoader(settings, target_url, work_dir / "catalog-load.stderr")
    loader.failure = "copying the catalog failed: psql"
    try:
        loader.begin(False)  # our own pg_dump's \restrict lines are for this psql to run
        with open(dump_err, "wb") as derr:
            dump = subprocess.Popen(
                [settings.pg_tool("pg_dump"), "--format=plain", "--no-password",
                 f"--schema={CATALOG_SCHEMA}", "--lock-wait-timeout=30000",
                 f"--dbname={live_conninfo}"],
                stdout=subprocess.PIPE, stderr=derr, stdin=subprocess.DEVNULL, env=live_env)
        try:
            for chunk in iter(lambda: dump.stdout.read(1 << 16), b""):
                loader.write(chunk)
            dump_rc = dump.wait()
        finally:
            if dump.poll() is None:
                dump.kill()
                dump.wait()
            dump.stdout.close()
        if dump_rc != 0:
            raise RestoreError(f"copying the catalog failed: pg_dump: "
                               f"{_stderr_summary(dump_err) or f'exit code {dump_rc}'}")
        loader.finish()
    finally:
        loader.abort()


def has_catalog_schema(url: str) -> bool:
    with psycopg.connect(url, connect_timeout=10) as conn:
        return conn.execute("SELECT to_regnamespace(%s)", (CATALOG_SCHEMA,)).fetchone()[0] \
            is not None


def lock_catalog(conn: psycopg.Connection) -> None:
    """Block writes to every catalog table (reads, such as pg_dump's, still pass) until
    `conn`'s transaction ends."""
    conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(CATALOG_LOCK_TIMEOUT)))
    tables = conn.execute("SELECT schemaname, tablename FROM pg_tables WHERE schemaname = %s",
                          (CATALOG_SCHEMA,)).fetchall()
    if tables:
        conn.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(
            sql.SQL(", ").join(sql.Identifier(s, t) for s, t in tables)))


def set_allow_connections(admin: psycopg.Connection, name: str, allow: bool) -> None:
    admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
        sql.Identifier(name), sql.SQL("true" if allow else "false")))


def hold_swap_lock(admin: psycopg.Connection, live: str) -> None:
    """Taken before the live database is closed to new connections; the server drops it with
    the admin session, so a restore that dies mid-swap never holds it afterwards."""
    admin.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (_SWAP_LOCK_CLASS, live))


def reopen_unless_swapping(admin: psycopg.Connection, live: str) -> bool:
    """Allow connections to `live` again if it is closed to them and no restore is swapping
    (nobody holds the swap lock). Returns whether it did."""
    row = admin.execute("SELECT datallowconn FROM pg_database WHERE datname = %s",
                        (live,)).fetchone()
    if row is None or row[0]:
        return False
    key = (_SWAP_LOCK_CLASS, live)
    if not admin.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", key).fetchone()[0]:
        return False  # a swap is going on right now
    try:
        set_allow_connections(admin, live, True)
    finally:
        admin.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", key)
    return True


def end_connections(admin: psycopg.Connection, name: str, keep: Iterable[int] = (),
                    timeout: float = END_CONNECTIONS_TIMEOUT) -> int:
    """Terminate every other session on database `name` and wait until they are gone."""
    ended: set[int] = set()
    keep = list(keep)
    deadline = time.monotonic() + timeout
    while True:
        pids = [r[0] for r in admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
            " AND NOT (pid = ANY(%s))", (name, keep)).fetchall()]
        if not pids:
            return len(ended)
        if time.monotonic() > deadline:
            raise RestoreError(f"{len(pids)} sessions on database {name!r} did not end within "
                               f"{timeout:.0f}s")
        for pid in pids:
            if admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()[0]:
                ended.add(pid)
        time.sleep(0.05)


def swap_names(admin: psycopg.Connection, live: str, new: str, old: str) -> None:
    """live -> old and new -> live in one transaction: both or neither."""
    with admin.transaction():
        admin.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
            sql.Identifier(live), sql.Identifier(old)))
        admin.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
            sql.Identifier(new), sql.Identifier(live)))


def server_major(version: str | None) -> str | None:
    """'15.20 (Debian ...)' -> '15'; '9.6.3' -> '9.6'."""
    if not version:
        return None
    number = version.split()[0]
    parts = number.split(".")
    return ".".join(parts[:2]) if parts[0] in ("9", "8", "7") else parts[0]


def database_free_bytes(conn: psycopg.Connection, url: str) -> int | None:
    """Free space where the server keeps its data, when the server runs on this machine and
    tells us where that is; None otherwise."""
    host = parse_url(url).get("host", "")
    if host and not host.startswith("/") and host not in ("localhost", "127.0.0.1", "::1"):
        return None
    try:
        row = conn.execute("SELECT setting FROM pg_settings WHERE name = 'data_directory'"
                           ).fetchone()
    except psycopg.Error:
        return None
    if not row or not row[0] or not Path(row[0]).exists():
        return None
    try:
        return shutil.disk_usage(row[0]).free
    except OSError:
        return None
