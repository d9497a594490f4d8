"""Verify the archive and load the new database beside the live one.

verify checks the whole archive; a real restore of an archive whose sha256 the catalog holds
meanwhile starts the load on a thread of this process (BackgroundLoad), and load_database ends
it: psql commits only there, after every check passed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backup_pipeline.archive.reader import sha256_file
from backup_pipeline.backup.service import ensure_private_dir
from backup_pipeline.errors import ArchiveError
from backup_pipeline.postgres import connect, database_name, with_database
from backup_pipeline.progress import Progress
from backup_pipeline.restore import database, preview, roles, siblings
from backup_pipeline.restore.errors import RestoreError
from backup_pipeline.restore.plan import RestorePlan, failing, keep_background, take_background
from backup_pipeline.restore.settle import RESTORE_STAGING
from backup_pipeline.restore.sqlscan import ScanResult
from backup_pipeline.restore.verify import CheckedArchive, check_archive, stage_archive
from backup_pipeline.settings import Settings


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
                                max_bytes=settings.max_unpack_bytes,
                                restricted_load=not plan.trusted)
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


def load_database(settings: Settings, plan: RestorePlan, checked: CheckedArchive,
                  progress: Progress | None = None) -> str | None:
    """Finish staging (begun by verify, or done here when it was not) and let psql commit the
    new database beside the live one: only now, after the archive passed verify and passed
    every check again on its way into psql and the documents' staging folder."""
    progress = progress or Progress()
    with failing(settings, plan, "load_database"):
        progress.set_phase("loading database" if plan.restores_database else
                           "staging documents")
        background = take_background(plan.restore_id)
        loader = background.wait(progress) if background is not None else \
            stage(settings, plan, checked.manifest, on_bytes=progress.add_bytes)
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


def stage(settings: Settings, plan: RestorePlan, manifest: dict[str, Any],
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
                siblings.record(settings.database_url, plan.new_database, plan.restore_id)
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
                      max_bytes=settings.max_unpack_bytes, restricted_load=not plan.trusted)
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
    """`stage` on a thread of its own, started by verify as soon as the manifest passed its
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
            self._result = stage(settings, plan, manifest, on_bytes=self._stopping,
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


def _start_load(settings: Settings, plan: RestorePlan, manifest: dict[str, Any]) -> None:
    keep_background(plan.restore_id, BackgroundLoad(settings, plan, manifest))


def _restricted(plan: RestorePlan, checked: CheckedArchive) -> bool:
    """Load with psql restricted to SQL: always for uploads, and for every dump whose pg_dump
    wrote \\restrict itself (then this psql is new enough to know it too)."""
    return not plan.trusted or bool(checked.restrict_lines)
