"""`schedules list / create / update ID / delete ID / toggle ID`.

Values are validated by backup_pipeline.scheduling.catalog (not by argparse), so every bad
value gets the same one-line error as from any other caller, and nothing is written.
"""

from __future__ import annotations

from backup_pipeline.cli.backups import _require_migrated
from backup_pipeline.cli.output import Result, format_table
from backup_pipeline.scheduling import catalog
from backup_pipeline.settings import Settings

FREQUENCY_HELP = "|".join(catalog.FREQUENCIES)


def register(sub, common) -> None:
    p = sub.add_parser("schedules", parents=[common], help="manage backup schedules")
    actions = p.add_subparsers(dest="schedules_command", metavar="ACTION", required=True)

    a = actions.add_parser("list", parents=[common], help="every schedule")
    a.set_defaults(handler=run_list)

    a = actions.add_parser("create", parents=[common], help="add a schedule")
    a.add_argument("--name", required=True)
    a.add_argument("--frequency", required=True, metavar=FREQUENCY_HELP)
    a.add_argument("--retention", required=True, metavar="K",
                   help="how many completed backups of this schedule to keep (1 or more)")
    a.add_argument("--disabled", action="store_true", help="create it switched off")
    a.set_defaults(handler=run_create)

    a = actions.add_parser("update", parents=[common], help="change a schedule")
    a.add_argument("id")
    a.add_argument("--name")
    a.add_argument("--frequency", metavar=FREQUENCY_HELP)
    a.add_argument("--retention", metavar="K")
    state = a.add_mutually_exclusive_group()
    state.add_argument("--disabled", dest="enabled", action="store_false", default=None)
    state.add_argument("--enabled", dest="enabled", action="store_true", default=None)
    a.set_defaults(handler=run_update)

    for name, handler, text in (
        ("delete", run_delete, "remove a schedule (its backups stay, outside retention)"),
        ("toggle", run_toggle, "enable or disable a schedule"),
    ):
        a = actions.add_parser(name, parents=[common], help=text)
        a.add_argument("id")
        a.set_defaults(handler=handler)


def _url() -> str:
    settings = Settings.from_env()
    _require_migrated(settings)
    return settings.database_url


def _describe(row: dict) -> str:
    state = "enabled" if row["is_enabled"] else "disabled"
    return (f"schedule {row['name']!r} ({row['id']}): {row['frequency']} ({row['cron']}), "
            f"keeps {row['retention_count']}, {state}")


def run_list(args) -> Result:
    rows = catalog.list_all(_url())
    text = format_table(rows, ["id", "name", "frequency", "retention_count", "is_enabled",
                               "completed_backups", "last_run_at"])
    return Result({"items": rows, "total": len(rows)}, f"{text}\n{len(rows)} schedules")


def run_create(args) -> Result:
    row = catalog.create(_url(), name=args.name, frequency=args.frequency,
                         retention=args.retention, enabled=not args.disabled)
    return Result(row, "created " + _describe(row))


def run_update(args) -> Result:
    row = catalog.update(_url(), args.id, name=args.name, frequency=args.frequency,
                         retention=args.retention, enabled=args.enabled)
    return Result(row, "updated " + _describe(row))


def run_delete(args) -> Result:
    out = catalog.delete(_url(), args.id)
    return Result(out, f"deleted schedule {out['name']!r}; its {out['backups_kept']} "
                       "backups stay (no longer subject to retention)")


def run_toggle(args) -> Result:
    row = catalog.toggle(_url(), args.id)
    return Result(row, _describe(row))
