"""Roles around a restore's load: the ones a dump names that this server lacks, and the
temporary role that loads an archive the catalog did not make.

An archive the catalog made (manual, scheduled, safety) is loaded as DATABASE_URL's role. Any
other (uploaded, imported, pulled from offsite storage) is loaded by psql connected as a
temporary login role made for this restore: no superuser, CREATEDB, CREATEROLE, REPLICATION or
BYPASSRLS, a member of no role but those below, owning only the new database while it loads.
`SET ROLE`, `SET SESSION AUTHORIZATION`, `COPY ... TO PROGRAM`, `pg_read_file`, untrusted
languages and role changes are then refused by the server itself, whatever the SQL says.

pg_dump gives every object its owner with `ALTER ... OWNER TO role` (and `ALTER DEFAULT
PRIVILEGES FOR ROLE role`), which only a member of that role may run. The loader is made a
member of a named role only when that role could not lend it more than its own rights: not a
superuser, no CREATEROLE, CREATEDB, LOGIN, REPLICATION or BYPASSRLS, no ADMIN OPTION, no
predefined role, and the same for every role it is a member of (the loader could SET ROLE to
any of them). Those statements naming another role are left out of the load (see
verify.CheckedSql), so the object stays the loader's, and after the commit everything the
loader owns goes to the content owner: RESTORE_UNTRUSTED_OWNER, or else the live database's
owner, which must itself be no superuser, CREATEROLE role or member of one or of a predefined
role (objects run code as their owner: index expressions under autovacuum, materialized views,
SECURITY DEFINER functions). The new database goes back to the live database's owner with the
live database's settings and privileges, and the loader is dropped.

Roles the dump names that the server lacks are created NOLOGIN without a password before the
statement that names them reaches psql (at most MAX_CREATED_ROLES for an untrusted archive).
Every role made is recorded in `backup.restore_roles` first, so a failed restore drops them and
the next restore drops what a killed one left.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from backup_pipeline.catalog import liveness
from backup_pipeline.postgres import connect, one_line, parse_url, with_database
from backup_pipeline.restore import database
from backup_pipeline.restore.errors import RestoreError
from backup_pipeline.restore.rolerefs import statement_roles
from backup_pipeline.settings import Settings

LOADER_PREFIX = "bp_loader_"
MAX_CREATED_ROLES = 100
_FIRST_NORMAL_OID = 16384
_MAX_NAME_BYTES = 63

_CLOSURE = """
SELECT r.rolname, r.oid < %(first)s, r.rolsuper, r.rolcreaterole, r.rolcreatedb,
       r.rolcanlogin, r.rolreplication, r.rolbypassrls,
       EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.member = r.oid AND m.admin_option)
FROM pg_roles r
WHERE r.rolname <> 'pg_database_owner' AND pg_has_role(%(role)s, r.oid, 'MEMBER')
ORDER BY r.rolname = %(role)s DESC, r.rolname
"""


def pg_name(name: str) -> str:
    """The name as the server stores it: identifiers longer than 63 bytes are truncated."""
    return name.encode()[:_MAX_NAME_BYTES].decode("utf-8", "ignore")


def exists(conn: psycopg.Connection, role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() \
        is not None


def _closure(conn: psycopg.Connection, role: str) -> list[tuple]:
    return conn.execute(_CLOSURE, {"first": _FIRST_NORMAL_OID, "role": role}).fetchall()


def privileged_reason(conn: psycopg.Connection, role: str) -> str | None:
    """Why objects of an untrusted archive must not belong to `role` (None: they may)."""
    if not exists(conn, role):
        return "does not exist"
    for name, predefined, superuser, createrole, *_ in _closure(conn, role):
        own = name == role
        if superuser:
            return "is a superuser" if own else f"is a member of superuser {name}"
        if predefined:
            return f"is a member of {name}"
        if createrole:
            return "has CREATEROLE" if own else f"is a member of {name}, which has CREATEROLE"
    return None


def lendable(conn: psycopg.Connection, role: str) -> bool:
    """Whether the loader may be made a member of `role` without gaining any right beyond
    that role's objects in the new database (see the module's docstring)."""
    if not exists(conn, role):
        return False
    return not any(any(row[1:]) for row in _closure(conn, role))


def database_owner(conn: psycopg.Connection, name: str) -> str:
    row = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                       (name,)).fetchone()
    if row is None:
        raise RestoreError(f"database {name!r} does not exist")
    return row[0]


def content_owner(settings: Settings, admin: psycopg.Connection, live: str) -> str:
    """Who owns an untrusted archive's objects after the load; raises with how to set one up
    when neither RESTORE_UNTRUSTED_OWNER nor the live database's owner may."""
    configured = settings.untrusted_owner
    owner = configured or database_owner(admin, live)
    reason = privileged_reason(admin, owner)
    if reason is None:
        return owner
    if configured:
        raise RestoreError(f"RESTORE_UNTRUSTED_OWNER={owner} {reason}: it must be an ordinary "
                           "role (no superuser, CREATEROLE or predefined role)")
    raise RestoreError(
        f"an archive not made by this catalog is loaded without superuser rights, and its "
        f"objects may not go to the live database's owner {owner}, which {reason}: set "
        f"RESTORE_UNTRUSTED_OWNER to an ordinary role that should own them (for example "
        f"CREATE ROLE app_data NOLOGIN), or make the live database's owner an ordinary role")


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores, so the password itself never reaches the
    server (nor its statement log)."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = base64.b64encode
    return (f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}$"
            f"{b64(hashlib.sha256(client_key).digest()).decode()}:{b64(server_key).decode()}")


def _record(url: str, role: str, restore_id: str, kind: str) -> None:
    with connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO backup.restore_roles (role_name, restore_id, kind)"
                     " VALUES (%s, %s, %s) ON CONFLICT (role_name) DO NOTHING",
                     (role, restore_id, kind))


def _forget(url: str, role: str) -> None:
    with connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM backup.restore_roles WHERE role_name = %s", (role,))


def drop_role(admin: psycopg.Connection, role: str) -> bool:
    """DROP ROLE IF EXISTS; False when objects or privileges still depend on it."""
    try:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
    except psycopg.errors.DependentObjectsStillRemain:
        return False
    return True


class RoleSetup:
    """Meets the roles a dump names as its statements reach psql (see the module's docstring).

    `statement(head)` runs before psql gets the statement and returns True when the statement
    must be left out: it acts as a role the loader may not become, or it is an `OWNER TO` a
    role the loader may become, kept in `deferred` to run after the commit (by then the dump's
    privileges are in place, such as CREATE on the schema, which a new owner needs). With
    `loader` None (an archive of this catalog, loaded as DATABASE_URL's role) it only creates
    missing roles."""

    def __init__(self, settings: Settings, restore_id: str, loader: str | None = None) -> None:
        self.url = settings.database_url
        self.restore_id = restore_id
        self.loader = loader
        self.created: list[str] = []
        self.redirected: set[str] = set()
        self.deferred: list[bytes] = []
        self._admin: psycopg.Connection | None = None
        self._known: dict[str, bool] = {}
        self._lent: dict[str, bool] = {"pg_database_owner": True}  # the loader owns the db

    def _conn(self) -> psycopg.Connection:
        if self._admin is None:
            self._admin = database.admin_connect(self.url)
        return self._admin

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None

    def statement(self, head: bytes) -> bool:
        found = statement_roles(head)
        if found is None:
            return False
        for role in found.named:
            self._ensure(pg_name(role))
        if self.loader is None or not found.acting:
            return False
        refused = [r for r in map(pg_name, found.acting) if not self._lend(r)]
        self.redirected.update(refused)
        if not refused and found.kind == "owner":
            self.deferred.append(head.strip())
            return True
        return bool(refused)

    def _ensure(self, role: str) -> None:
        if role in self._known or role.startswith("pg_") or not role:
            return
        conn = self._conn()
        if exists(conn, role):
            self._known[role] = True
            return
        if self.loader is not None and len(self.created) >= MAX_CREATED_ROLES:
            raise RestoreError(f"the dump names more than {MAX_CREATED_ROLES} roles this server "
                               "lacks: refusing to create them for an archive made elsewhere")
        _record(self.url, role, self.restore_id, "created")
        try:
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        except psycopg.errors.DuplicateObject:
            _forget(self.url, role)  # made by someone else meanwhile: not ours to drop
        except psycopg.Error as exc:
            _forget(self.url, role)
            raise RestoreError(f"cannot create role {role!r}, which the dump uses: "
                               f"{one_line(exc)}") from None
        else:
            self.created.append(role)
        self._known[role] = True

    def _lend(self, role: str) -> bool:
        if role not in self._lent:
            conn = self._conn()
            ok = lendable(conn, role)
            if ok:
                conn.execute(sql.SQL("GRANT {} TO {}").format(
                    sql.Identifier(role), sql.Identifier(self.loader)))
            self._lent[role] = ok
        return self._lent[role]


def create_loader(settings: Settings, restore_id: str, role: str, new_database: str) -> str:
    """Login role `role` (named after the restore) for this restore's load, made owner of the
    new database, with a random password; returns the connection URL for psql (the password
    in it goes to PGPASSWORD, never to a command line). Raises with a one-line hint when the
    server refuses its login."""
    password = secrets.token_urlsafe(32)
    _record(settings.database_url, role, restore_id, "loader")
    with database.admin_connect(settings.database_url) as admin:
        admin.execute(sql.SQL(
            "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
            " INHERIT VALID UNTIL {} PASSWORD {}").format(
                sql.Identifier(role),
                sql.Literal(admin.execute("SELECT (now() + interval '2 days')::text"
                                          ).fetchone()[0]),
                sql.Literal(scram_verifier(password))))
        admin.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
            sql.Identifier(new_database), sql.Identifier(role)))
    params: dict[str, Any] = parse_url(with_database(settings.database_url, new_database))
    params.update(user=role, password=password)
    for key in ("passfile", "service"):
        params.pop(key, None)
    url = make_conninfo(**params)
    try:
        psycopg.connect(url, connect_timeout=10).close()
    except psycopg.OperationalError as exc:
        raise RestoreError(
            f"the server refused the login of this restore's temporary role ({one_line(exc)}): "
            "archives not made by this catalog are loaded by a temporary role that logs in with "
            "a password, so pg_hba.conf must allow password logins (scram-sha-256) from this "
            "host to the database server, for example 'host all all 127.0.0.1/32 "
            "scram-sha-256'") from None
    return url


def run_deferred(loader_url: str, statements: list[bytes]) -> None:
    """The `OWNER TO` statements left out of the load, as the loader (never with more rights
    than the load had), in one transaction."""
    if not statements:
        return
    with psycopg.connect(loader_url, connect_timeout=10) as conn:
        for text in statements:
            try:
                conn.execute(text.decode("utf-8"))
            except (psycopg.Error, UnicodeDecodeError) as exc:
                shown = " ".join(text[:160].decode("utf-8", "replace").split())
                raise RestoreError(f"{shown!r} failed after the load: {one_line(exc)}") from None


def hand_over(settings: Settings, loader: str, owner: str, live: str, new_database: str
              ) -> None:
    """After the load committed: what the loader owns goes to `owner`, the new database back
    to the live database's owner with the live database's settings and privileges (whatever
    the dump set on it), and the loader is dropped."""
    with psycopg.connect(with_database(settings.database_url, new_database), autocommit=True,
                         connect_timeout=10) as conn:
        conn.execute(sql.SQL("REASSIGN OWNED BY {} TO {}").format(
            sql.Identifier(loader), sql.Identifier(owner)))
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(loader)))
    with database.admin_connect(settings.database_url) as admin:
        admin.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
            sql.Identifier(new_database), sql.Identifier(database_owner(admin, live))))
        database.reset_database_like(admin, live, new_database)
        if not drop_role(admin, loader):
            raise RestoreError(f"the restore's temporary role {loader} still owns objects "
                               "after the load")
    _forget(settings.database_url, loader)


def _records(url: str, where: str, args: tuple) -> list[tuple[str, str, str | None, str]]:
    with connect(url) as conn:
        if conn.execute("SELECT to_regclass('backup.restore_roles')").fetchone()[0] is None:
            return []
        return conn.execute(
            "SELECT r.role_name, r.kind, u.state, r.restore_id::text FROM backup.restore_roles r"
            " LEFT JOIN backup.restore_runs u ON u.id = r.restore_id WHERE " + where
            + " ORDER BY r.kind DESC, r.role_name", args).fetchall()


def _drop_recorded(settings: Settings, rows: list[tuple[str, str, str | None, str]]) -> None:
    """Drop the roles recorded; a created role that objects depend on is in use (its restore
    got as far as the swap): it stays, and so does a loader that still owns something."""
    if not rows:
        return
    with database.admin_connect(settings.database_url) as admin:
        for role, kind, state, _owner in rows:
            in_use = kind == "created" and state == "completed"
            if in_use or drop_role(admin, role) or kind == "created":
                _forget(settings.database_url, role)


def drop_for_restore(settings: Settings, restore_id: str) -> None:
    """A failed restore's roles (its new database is dropped already)."""
    _drop_recorded(settings, _records(settings.database_url, "r.restore_id = %s",
                                      (restore_id,)))


def forget_created(settings: Settings, restore_id: str) -> None:
    """The restore completed: the roles it created own restored objects and stay."""
    with connect(settings.database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM backup.restore_roles WHERE restore_id = %s AND kind = 'created'",
                     (restore_id,))


def sweep(settings: Settings, current_restore_id: str) -> None:
    """What restores (and restore drills) that died left (their sibling databases are dropped
    already); a drill still running keeps its roles."""
    rows = _records(settings.database_url, "r.restore_id <> %s", (current_restore_id,))
    owners = sorted({row[3] for row in rows})
    gone = set(liveness.abandoned(settings.database_url, owners, kind="drill")) if owners \
        else set()
    _drop_recorded(settings, [row for row in rows if row[3] in gone])
