"""The restore steps, each a plain function; restore_job's ops and the tests call them in order.

claim -> verify (and stage) -> preview (dry run, then done)
                             -> safety_backup -> load_database -> swap -> finish

Everything before `swap` works beside the live system (a staging folder, a new database); `swap`
ends with the one rename transaction that makes the restore real, after which only cleanup is
left. Any failure before that drops what was staged, leaves database and documents as they
were, and records the step and the reason in `backup.restore_runs`.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from backup_pipeline.archive.reader import sha256_file
from backup_pipeline.backup.inventory import archive_path
from backup_pipeline.backup.service import describe_error, ensure_private_dir
from backup_pipeline.catalog import history
from backup_pipeline.errors import ArchiveError, ConfigError
from backup_pipeline.postgres import connect, database_name, with_database
from backup_pipeline.progress import Progress
from backup_pipeline.restore import database, documents, preview, roles, runs
from backup_pipeline.restore.errors import RestoreBusyError, RestoreError
from backup_pipeline.restore.settle import (
    RESTORE_STAGING,
    mark_closed,
    reopening,
    settle_crashed_documents,
)
from backup_pipeline.restore.sqlscan import ScanResult
from backup_pipeline.restore.verify import CheckedArchive, check_archive, stage_archive
from backup_pipeline.settings import Settings


@dataclass(frozen=True)
class RestorePlan:
    restore_id: str
    backup_id: str
    archive_path: str
    archive_sha256: str | None
    backup_type: str
    dry_run: bool
    scope: str
    staging_dir: str
    documents_dir: str
    documents_staging: str
    new_database: str
    old_database: str

    @property
    def restores_database(self) -> bool:
        return self.scope in ("database", "both")

    @property
    def restores_documents(self) -> bool:
        return self.scope in ("documents", "both")

    @property
    def trusted(self) -> bool:
        """Archives made here (uploads are not)."""
        return self.backup_type != "uploaded"

    @property
    def loader_role(self) -> str:
        """The temporary role that loads an untrusted archive (see restore.roles)."""
        return roles.LOADER_PREFIX + self.restore_id.replace("-", "")


def _plan(settings: Settings, row: dict[str, Any], backup: dict[str, Any], path: Path
          ) -> RestorePlan:
    live = database_name(settings.database_url)
    docs = settings.documents_dir.resolve()  # a symlinked DOCUMENTS_DIR keeps its link
    return RestorePlan(
        restore_id=row["id"], backup_id=backup["id"], archive_path=str(path),
        archive_sha256=backup.get("sha256"), backup_type=backup["backup_type"],
        dry_run=row["dry_run"], scope=row["scope"],
        staging_dir=str(settings.backup_dir / RESTORE_STAGING / row["id"]),
        documents_dir=str(docs), documents_staging=str(documents.staging_path(docs, row["id"])),
        new_database=database.sibling_name(live, "restore", row["id"]),
        old_database=database.sibling_name(live, "old", row["id"]),
    )


def claim(settings: Settings, backup_id: str, *, dry_run: bool = True, scope: str = "both",
          trigger: str = "direct", run_id: str | None = None,
          alive: runs.Alive = runs._always_alive, restore_id: str | None = None) -> RestorePlan:
    """Record the restore as running; refuse if another restore or a backup is running.

    `alive(run_id)` tells whether a Dagster run is still going; rows of ended runs are reaped."""
    if scope not in runs.SCOPES:
        raise ConfigError(f"unknown restore scope {scope!r}; expected one of {runs.SCOPES}")
    backup = reopening(settings, lambda: history.get(settings.database_url, backup_id))
    if backup["status"] != "completed":
        raise RestoreError(f"backup {backup['id']} is {backup['status']}, not completed: "
                           "it cannot be restored")
    path = archive_path(settings, backup)
    if path is None or not path.is_file():
        raise RestoreError(f"the archive of backup {backup['id']} ({backup.get('file_name')}) "
                           f"is missing in {settings.backup_dir}")
    with connect(settings.database_url) as conn:
        if not runs._has_table(conn):
            raise ConfigError("the catalog has no restore table: run 'backup-pipeline migrate'")
    runs.reap(settings.database_url, alive)
    if not dry_run:
        busy = runs.running_backups(settings.database_url, settings.backup_dir)
        if busy:
            raise RestoreBusyError(
                f"a restore is refused while backup {busy[0]['id']} ({busy[0]['backup_type']}, "
                f"since {busy[0]['started_at']}) is being written; try again when it has ended")
    row = runs.create(settings.database_url, backup_id=backup["id"], dry_run=dry_run,
                      scope=scope, trigger=trigger, run_id=run_id, restore_id=restore_id)
    plan = _plan(settings, row, backup, path)
    if not dry_run:
        try:
            settle_crashed_documents(settings, plan.restore_id)
        except Exception as exc:
            message = (f"what an earlier restore left in the documents could not be settled "
                       f"({describe_error(exc)}); see README, Operations")
            runs.fail(settings.database_url, plan.restore_id, message)
            raise RestoreError(message) from exc
        with suppress(OSError, RestoreError, psycopg.Error):
            _sweep_leftovers(settings, plan)
        with suppress(RestoreError, psycopg.Error):
            roles.sweep(settings, plan.restore_id)  # after the databases that depend on them
    return plan


def _sweep_leftovers(settings: Settings, plan: RestorePlan) -> None:
    """Remove what restores that crashed left behind (their documents are settled already):
    every other staging folder and sibling database of ours is stale."""
    root = settings.backup_dir / RESTORE_STAGING
    if root.is_dir():
        for entry in root.iterdir():
            if entry.name != plan.restore_id:
                shutil.rmtree(entry, ignore_errors=True)
    live = database_name(settings.database_url)
    with database.admin_connect(settings.database_url) as admin:
        for kind in ("restore", "old"):
            prefix = database.sibling_name(live, kind, "0" * 8)[:-8]
            for (name,) in admin.execute(
                    "SELECT datname FROM pg_database WHERE left(datname, %s) = %s"
                    " AND length(datname) = %s AND right(datname, 8) ~ '^[0-9a-f]{8}$'",
                    (len(prefix), prefix, len(prefix) + 8)).fetchall():
                if name not in (plan.new_database, plan.old_database):
                    database.drop(admin, name)


def cleanup(settings: Settings, plan: RestorePlan, keep: set[str] | None = None) -> None:
    """Drop what this restore staged; never touches the live database or documents."""
    if plan.dry_run:
        return  # a preview stages nothing
    keep = keep or set()
    if plan.restores_database:
        with suppress(Exception), database.admin_connect(settings.database_url) as admin:
            database.drop(admin, plan.new_database)
        with suppress(Exception):
            roles.drop_for_restore(settings, plan.restore_id)
    if plan.documents_staging not in keep:
        shutil.rmtree(plan.documents_staging, ignore_errors=True)
    shutil.rmtree(plan.staging_dir, ignore_errors=True)


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt) or type(exc).__name__.endswith("InterruptedError"):
        return "the restore was stopped before it finished"
    return describe_error(exc)


@contextmanager
def failing(settings: Settings, plan: RestorePlan, step: str, keep: set[str] | None = None
            ) -> Iterator[None]:
    """Record `step`; on any failure clean up, mark the restore failed (step and reason) and
    re-raise as a one-line RestoreError (interrupts stay interrupts)."""
    try:
        runs.update(settings.database_url, plan.restore_id, step=step)
        yield
    except BaseException as exc:
        message = _message(exc)
        _stop_load(plan.restore_id)  # before cleanup drops what it is writing to
        cleanup(settings, plan, keep)
        runs.fail(settings.database_url, plan.restore_id, message)
        if isinstance(exc, Exception):
            raise RestoreError(f"restore failed at step {step}: {message}") from exc
        raise


def verify(settings: Settings, plan: RestorePlan, progress: Progress | None = None
           ) -> CheckedArchive:
    """Check the archive completely (its sha256 against the catalog included) before anything
    is committed.

    A real restore of an archive whose sha256 the catalog holds first checks that sha256 alone:
    from then on the file is the one that was verified when it was made or imported, and the
    new database starts loading on a thread of this process (see BackgroundLoad) while the
    rest is checked (and the safety backup taken); only load_database lets psql commit. No SQL
    from a file that is not the catalog's ever reaches psql. Without a recorded sha256 the load
    waits for load_database."""
    progress = progress or Progress()
    with failing(settings, plan, "verify"):
        path = Path(plan.archive_path)
        load_early = not plan.dry_run and bool(plan.archive_sha256)
        whole_file_sha256 = plan.archive_sha256
        if not plan.dry_run:
            ensure_private_dir(settings.backup_dir / RESTORE_STAGING)
        if load_early:
            progress.set_phase("checking the archive's sha256")
            if sha256_file(path, on_bytes=progress.add_bytes) != plan.archive_sha256:
                raise ArchiveError(f"{path.name} does not match the sha256 recorded in the "
                                   "catalog")
            whole_file_sha256 = None  # checked; the load checks it once more as it reads
        progress.set_phase("verifying archive")

        def check_space(manifest: dict[str, Any]) -> None:
            if plan.dry_run:
                return
            short = preview.space_needs(settings, manifest, plan.scope,
                                        database_free=_database_free(settings, plan))
            if short:
                raise RestoreError(f"not enough disk space: {'; '.join(short)}")
            if load_early:
                _start_load(settings, plan, manifest)

        checked = check_archive(path, archive_sha256=whole_file_sha256,
                                on_manifest=check_space, on_bytes=progress.add_bytes,
                                max_bytes=settings.max_unpack_bytes)
        if not plan.dry_run and plan.restores_database and not plan.trusted:
            _content_owner(settings)  # refused here, before the safety backup, if it must be
        return checked


def _content_owner(settings: Settings) -> str:
    with database.admin_connect(settings.database_url) as admin:
        return roles.content_owner(settings, admin, database_name(settings.database_url))


def _database_free(settings: Settings, plan: RestorePlan) -> int | None:
    if not plan.restores_database:
        return None
    with connect(settings.database_url) as conn:
        return database.database_free_bytes(conn, settings.database_url)


def make_preview(settings: Settings, plan: RestorePlan, checked: CheckedArchive
                 ) -> dict[str, Any]:
    """What the restore would change; a dry run ends here, completed."""
    with failing(settings, plan, "preview"):
        backup = history.get(settings.database_url, plan.backup_id)
        result = preview.build(settings, restore_id=plan.restore_id, backup=backup,
                               scope=plan.scope, checked=checked)
        if plan.dry_run:
            runs.update(settings.database_url, plan.restore_id, state="completed", step="done",
                        preview=result, warnings=result["warnings"])
        return result


def safety_backup(settings: Settings, plan: RestorePlan,
                  make_backup: Callable[[], dict[str, Any]]) -> str:
    """Take the safety backup (`make_backup` runs backup_job, or the backup steps directly)."""
    with failing(settings, plan, "safety_backup"):
        row = make_backup()
        if row.get("backup_type") != "safety" or row.get("status") != "completed":
            raise RestoreError(f"the safety backup did not complete (backup {row.get('id')}, "
                               f"status {row.get('status')})")
        runs.update(settings.database_url, plan.restore_id, safety_backup_id=row["id"])
        return row["id"]


def load_database(settings: Settings, plan: RestorePlan, checked: CheckedArchive,
                  progress: Progress | None = None) -> str | None:
    """Finish staging (begun by verify, or done here when it was not) and let psql commit the
    new database beside the live one: only now, after the archive passed verify and passed
    every check again on its way into psql and the documents' staging folder."""
    progress = progress or Progress()
    with failing(settings, plan, "load_database"):
        progress.set_phase("loading database" if plan.restores_database else
                           "staging documents")
        background = _take_load(plan.restore_id)
        loader = background.wait(progress) if background is not None else \
            _stage(settings, plan, checked.manifest, on_bytes=progress.add_bytes)
        if loader is None:
            return None
        if loader.restricted != _restricted(plan, checked):
            loader.abort()
            raise RestoreError("the dump's \\restrict line was not where pg_dump writes it "
                               "(at its top): refusing to load it")
        loader.finish()
        target = with_database(settings.database_url, plan.new_database)
        if database.has_catalog_schema(target):
            raise RestoreError("the archive's dump creates schema backup, which is reserved "
                               "for the catalog")
        if not plan.trusted:
            roles.run_deferred(loader.url, loader.deferred)
            roles.hand_over(settings, plan.loader_role, _content_owner(settings),
                            database_name(settings.database_url), plan.new_database)
        return plan.new_database


def _stage(settings: Settings, plan: RestorePlan, manifest: dict[str, Any],
           on_bytes: Callable[[int], None] | None = None,
           on_loader: Callable[[database.PsqlLoader], None] | None = None
           ) -> database.PsqlLoader | None:
    """Create the new database and stage the archive in one more pass: the dump's SQL streams
    from the archive through the scanner straight into psql, and the documents (after the dump
    in the archive) are written to their staging folder while psql builds the indexes.
    Returns psql with its input still open (not committed), or None for documents only.

    An archive the catalog did not make is loaded by psql connected as a temporary role of
    its own, owner of the new database (restore.roles); the roles the dump names are met as
    its statements pass (created when missing, lent to that role or the statement left out)."""
    ensure_private_dir(settings.backup_dir / RESTORE_STAGING)
    os.mkdir(plan.staging_dir, 0o700)
    documents_to = None
    if plan.restores_documents:
        documents_to = Path(plan.documents_staging)
        documents_to.parent.mkdir(parents=True, exist_ok=True)
    loader = None
    setup = roles.RoleSetup(settings, plan.restore_id,
                            None if plan.trusted else plan.loader_role)
    try:
        if plan.restores_database:
            live = database_name(settings.database_url)
            with database.admin_connect(settings.database_url) as admin:
                if database.exists(admin, plan.new_database):
                    raise RestoreError(f"database {plan.new_database} already exists")
                database.create_database_like(admin, live, plan.new_database)
            target = with_database(settings.database_url, plan.new_database)
            if not plan.trusted:
                _content_owner(settings)  # the load waits for none it would have to refuse
                target = roles.create_loader(settings, plan.restore_id, plan.loader_role,
                                             plan.new_database)
            loader = database.PsqlLoader(settings, target,
                                         Path(plan.staging_dir) / "psql.stderr")
            if on_loader is not None:
                on_loader(loader)

        def begin(scan: ScanResult) -> None:
            loader.begin(not plan.trusted or bool(scan.restrict_lines))

        stage_archive(Path(plan.archive_path), manifest,
                      sql_to=loader.write if loader else None, before_sql=begin,
                      documents_to=documents_to, archive_sha256=plan.archive_sha256,
                      on_bytes=on_bytes, leave_out=setup.statement if loader else None,
                      max_bytes=settings.max_unpack_bytes)
    except BaseException:
        if loader is not None:
            loader.abort()
        raise
    finally:
        setup.close()
    if loader is not None:
        loader.deferred = setup.deferred
    return loader


class _Stopped(BaseException):
    """Raised inside a background load that was asked to stop."""


class BackgroundLoad:
    """`_stage` on a thread of its own, started by verify as soon as the manifest passed its
    checks, so the new database loads while the archive is verified (and the safety backup
    is taken): the load is what takes time, and it only ever writes beside the live system.
    psql's input stays open until load_database commits it; any step that fails stops the
    load first (failing), and cleanup drops what it made. The thread belongs to this process,
    so restore_job runs its steps in one process (in-process executor)."""

    def __init__(self, settings: Settings, plan: RestorePlan, manifest: dict[str, Any]) -> None:
        self._stop = threading.Event()
        self.bytes = 0
        self._loader: database.PsqlLoader | None = None
        self._result: database.PsqlLoader | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(settings, plan, manifest),
                                        name="restore-load", daemon=True)
        self._thread.start()

    def _run(self, settings: Settings, plan: RestorePlan, manifest: dict[str, Any]) -> None:
        try:
            self._result = _stage(settings, plan, manifest, on_bytes=self._stopping,
                                  on_loader=self._keep)
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that waits
            self._error = exc

    def _keep(self, loader: database.PsqlLoader) -> None:
        self._loader = loader
        self._stopping(0)

    def _stopping(self, n: int) -> None:
        self.bytes += n  # this thread's own count; waiters only read it
        if self._stop.is_set():
            raise _Stopped

    def wait(self, progress: Progress | None = None) -> database.PsqlLoader | None:
        """Wait for the load to end (reporting its bytes to `progress` meanwhile, from this
        thread); its psql, input still open, or None for documents only."""
        reported = 0
        while self._thread.is_alive():
            self._thread.join(0.25)
            if progress is not None and self.bytes > reported:
                progress.add_bytes(self.bytes - reported)
                reported = self.bytes
        if self._error is not None:
            raise self._error
        return self._result

    def stop(self) -> None:
        self._stop.set()
        if self._loader is not None:
            self._loader.abort()  # unblocks a write to psql
        self._thread.join()
        if self._result is not None:
            self._result.abort()


_loads: dict[str, BackgroundLoad] = {}
_loads_lock = threading.Lock()


def _start_load(settings: Settings, plan: RestorePlan, manifest: dict[str, Any]) -> None:
    with _loads_lock:
        _loads[plan.restore_id] = BackgroundLoad(settings, plan, manifest)


def _take_load(restore_id: str) -> BackgroundLoad | None:
    with _loads_lock:
        return _loads.pop(restore_id, None)


def _stop_load(restore_id: str) -> None:
    background = _take_load(restore_id)
    if background is not None:
        background.stop()


def _restricted(plan: RestorePlan, checked: CheckedArchive) -> bool:
    """Load with psql restricted to SQL: always for uploads, and for every dump whose pg_dump
    wrote \\restrict itself (then this psql is new enough to know it too)."""
    return not plan.trusted or bool(checked.restrict_lines)


def swap(settings: Settings, plan: RestorePlan) -> dict[str, Any]:
    """Carry the catalog across, end the other sessions, and swap documents and database in.

    Until the final rename transaction commits, everything is undone on failure."""
    keep: set[str] = set()
    with failing(settings, plan, "swap", keep):
        staged, live_docs = Path(plan.documents_staging), Path(plan.documents_dir)
        if plan.restores_documents:
            documents.prepare_staged_root(staged, live_docs)
            documents.mark(staged, plan.restore_id,
                           plan.old_database if plan.restores_database else None)
            os.sync()  # the staged files are on disk before they become the live tree
        if not plan.restores_database:
            documents.exchange(staged, live_docs)
            return {"sessions_ended": 0, "database": None}
        return _swap_database(settings, plan, staged, live_docs, keep)


def _swap_database(settings: Settings, plan: RestorePlan, staged: Path, live_docs: Path,
                   keep: set[str]) -> dict[str, Any]:
    live = database_name(settings.database_url)
    new_url = with_database(settings.database_url, plan.new_database)
    with database.admin_connect(settings.database_url) as admin, \
            connect(settings.database_url) as lock_conn:
        database.lock_catalog(lock_conn)
        database.copy_catalog(settings, settings.database_url, new_url, Path(plan.staging_dir))
        database.hold_swap_lock(admin, live)
        closed = mark_closed(Path(plan.staging_dir), live)
        try:
            database.set_allow_connections(admin, live, False)
            ended = database.end_connections(admin, live, keep=[lock_conn.info.backend_pid])
            lock_conn.close()
            ended += database.end_connections(admin, live)
            had_live_docs = None
            if plan.restores_documents:
                had_live_docs = documents.exchange(staged, live_docs)
            try:
                database.swap_names(admin, live, plan.new_database, plan.old_database)
            except BaseException:
                if had_live_docs is not None:
                    try:
                        documents.undo_exchange(staged, live_docs, had_live_docs)
                    except BaseException as exc:
                        keep.add(plan.documents_staging)
                        raise RestoreError(
                            f"the database swap failed and the previous documents could not be "
                            f"put back ({describe_error(exc)}): they are in {staged}") from exc
                raise
        except BaseException:
            with suppress(Exception):
                database.set_allow_connections(admin, live, True)
                closed.unlink()
            raise
        closed.unlink()  # renamed: the live name is the new, open database
    return {"sessions_ended": ended, "database": live}


def finish(settings: Settings, plan: RestorePlan) -> dict[str, Any]:
    """After the swap: drop the previous database and documents, mark the restore completed.
    A failure here is a warning (the restore itself is done)."""
    warnings: list[str] = []
    with suppress(Exception):
        runs.update(settings.database_url, plan.restore_id, step="cleanup")
    drop_old_database = plan.restores_database
    if plan.restores_documents:
        try:
            # First: while the marker is live, a crash recovery decides by the old database.
            documents.unmark(Path(plan.documents_dir), plan.restore_id)
            if os.path.lexists(plan.documents_staging):
                shutil.rmtree(plan.documents_staging)
        except OSError as exc:
            drop_old_database = False
            warnings.append(f"the previous documents are kept in {plan.documents_staging} "
                            f"({describe_error(exc)}); remove them when no longer needed")
    if drop_old_database:
        try:
            with database.admin_connect(settings.database_url) as admin:
                database.drop(admin, plan.old_database)
        except Exception as exc:  # noqa: BLE001 - reported, not fatal
            warnings.append(f"the previous database is kept as {plan.old_database} "
                            f"({describe_error(exc)}); drop it when no longer needed")
    shutil.rmtree(plan.staging_dir, ignore_errors=True)
    if plan.restores_database:
        with suppress(Exception):
            roles.forget_created(settings, plan.restore_id)
    runs.update(settings.database_url, plan.restore_id, state="completed", step="done",
                warnings=warnings)
    return runs.get(settings.database_url, plan.restore_id)


def run_restore(settings: Settings, backup_id: str, *, dry_run: bool = True,
                scope: str = "both", make_safety_backup: Callable[[], dict] | None = None,
                progress: Progress | None = None) -> dict[str, Any]:
    """The whole restore without Dagster (tests, benchmarks): the preview for a dry run, the
    completed restore record otherwise."""
    plan = claim(settings, backup_id, dry_run=dry_run, scope=scope)
    checked = verify(settings, plan, progress)
    if dry_run:
        return make_preview(settings, plan, checked)
    if make_safety_backup is None:
        from backup_pipeline.backup.service import run_backup

        def make_safety_backup() -> dict:
            return run_backup(settings, backup_type="safety", trigger="restore",
                              note=f"before restore {plan.restore_id}")
    safety_backup(settings, plan, make_safety_backup)
    load_database(settings, plan, checked, progress)
    swap(settings, plan)
    return finish(settings, plan)
