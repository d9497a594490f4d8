"""`health`: one verdict on the backups for cron, Nagios or a container probe.

Exit 0 healthy, 1 warning, 2 failing (the monitoring-plugin convention); a catalog that cannot
be read is failing too, with its one-line reason.
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg

from backup_pipeline.cli.output import Result
from backup_pipeline.errors import BackupPipelineError
from backup_pipeline.health.freshness import grace_from_env
from backup_pipeline.postgres import one_line
from backup_pipeline.settings import Settings


def register(sub, common) -> None:
    p = sub.add_parser(
        "health", parents=[common],
        help="freshness per schedule, last drill, notification backlog; exit 0 healthy, "
        "1 warning, 2 failing")
    p.set_defaults(handler=run_health)


def run_health(args) -> Result:
    # imported here, not for every command: the report brings the notification modules and
    # pydantic, the drill's result Dagster
    from backup_pipeline.checks import drill_from_instance
    from backup_pipeline.health import report as health_report

    now = datetime.now(UTC)
    try:
        settings = Settings.from_env()
        grace = grace_from_env()
        drill, drill_problem = drill_from_instance()
        report = health_report.build(settings.database_url, now=now, grace=grace, drill=drill)
    except (BackupPipelineError, psycopg.Error) as exc:
        problem = f"cannot judge the backups: {one_line(exc)}"
        data = {"status": health_report.FAILING, "checked_at": now.isoformat(),
                "problems": [problem], "schedules": [], "last_backup": None, "drill": None,
                "offsite": None, "outbox": None}
        return Result(data, f"status: FAILING\n  FAILING: {problem}",
                      exit_code=health_report.EXIT_CODES[health_report.FAILING], error=problem)
    if drill_problem:
        report.warnings.append(drill_problem)
    return Result(report.as_json(), report.text(), exit_code=report.exit_code)
