"""`migrate`: create or upgrade the catalog tables."""

from __future__ import annotations

from backup_pipeline.catalog.migrate import migrate
from backup_pipeline.cli.output import Result
from backup_pipeline.postgres import describe
from backup_pipeline.settings import Settings


def register(sub, common) -> None:
    p = sub.add_parser("migrate", parents=[common], help="create or upgrade the catalog tables")
    p.set_defaults(handler=run_migrate)


def run_migrate(args) -> Result:
    settings = Settings.from_env()
    applied = migrate(settings.database_url)
    text = (f"applied {', '.join(applied)}" if applied else "catalog is up to date") + \
        f" ({describe(settings.database_url)}, schema backup)"
    return Result({"applied": applied, "database": describe(settings.database_url)}, text)
