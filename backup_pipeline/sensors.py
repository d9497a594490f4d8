"""Notification sensors: success and failure of backup_job and restore_job, failed drill_job
runs, the delivery of the outbox (mail and notification URLs), and the freshness of the
backups.

The run-status sensors monitor all code locations and filter on the job name themselves: runs
made by `execute_in_process` (the CLI) carry no code location origin, and a sensor with
`monitored_jobs=[...]` would silently ignore them. Each sensor only decides and queues (the work
is in `backup_pipeline.notifications.service`), then tries to send at once; whatever could not be
sent stays in the outbox, which `email_outbox_sensor` retries with backoff. That sensor also
catches up runs that no run-status sensor handled (Dagster moves a run-status sensor's cursor
on even when it fails, and ignores runs that ended before its first tick).
"""

import json
import os
import time
from datetime import UTC, datetime, timedelta

import dagster as dg

from backup_pipeline import checks
from backup_pipeline.errors import ConfigError, error_text
from backup_pipeline.health import alerts
from backup_pipeline.health.freshness import grace_from_env
from backup_pipeline.notifications import service
from backup_pipeline.notifications.facts import (
    BACKUP_JOB,
    DRILL_JOB,
    JOB_FAMILIES,
    KINDS,
    RESTORE_JOB,
    FinishedRun,
)
from backup_pipeline.offsite import catalog as offsite_catalog
from backup_pipeline.offsite import cleanup as offsite_cleanup
from backup_pipeline.ops.backup import SKIPPED_TAG
from backup_pipeline.resources.database import DatabaseResource
from backup_pipeline.resources.offsite import OffsiteResource
from backup_pipeline.resources.smtp import SmtpResource

RUN_SENSOR_INTERVAL_SECONDS = 15
OUTBOX_SENSOR_INTERVAL_SECONDS = 30
# runs the run-status sensors had this long to handle are caught up by the outbox sensor
CATCH_UP_AFTER = timedelta(minutes=5)
CATCH_UP_WINDOW = timedelta(hours=24)
OUTBOX_SENSOR = "email_outbox_sensor"
FRESHNESS_SENSOR = "backup_freshness_sensor"
FRESHNESS_SENSOR_INTERVAL_SECONDS = 180
# the freshness check is recorded when its result changes, and at least this often
FRESHNESS_REPORT_EVERY = timedelta(hours=1)
_STATUSES = {"success": dg.DagsterRunStatus.SUCCESS, "failure": dg.DagsterRunStatus.FAILURE}


def sensor_name(kind: str) -> str:
    return f"{kind}_email_sensor"


def webserver_url() -> str | None:
    return os.environ.get("DAGSTER_WEBSERVER_URL")


def finished_run(instance: dg.DagsterInstance, run: dg.DagsterRun) -> FinishedRun:
    """The run as plain data, with its first failed step and that step's error (or the run's
    failure message when no step failed)."""
    succeeded = run.status == dg.DagsterRunStatus.SUCCESS
    failed_step = error = None
    if not succeeded:
        for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
            event = entry.dagster_event
            failed_step = event.step_key
            error = error_text(event.event_specific_data.error)
            break
        else:
            for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE):
                data = entry.dagster_event.event_specific_data
                error = error_text(data.error) if data is not None and data.error else \
                    entry.dagster_event.message
    return FinishedRun(run_id=run.run_id, job_name=run.job_name, succeeded=succeeded,
                       tags=dict(run.tags), run_config=dict(run.run_config or {}),
                       failed_step=failed_step, error=error,
                       skip_reason=run.tags.get(SKIPPED_TAG))


def _smtp_config(smtp: SmtpResource, log):
    """(configured, config): configured is False only when SMTP_HOST is unset; config is None
    when unset or invalid (the problem is logged; queued mail waits for a fix)."""
    try:
        config = smtp.config()
    except ConfigError as exc:
        log.error(f"mail cannot be sent: {exc}")
        return True, None
    return config is not None, config


def _notify(context: dg.RunStatusSensorContext, database: DatabaseResource, smtp: SmtpResource,
            name: str):
    configured, config = _smtp_config(smtp, context.log)
    run = finished_run(context.instance, context.dagster_run)
    decision = service.decide(database.url, run, mail_configured=configured,
                              webserver_url=webserver_url(), decided_by=name)
    if decision.outcome != "queued":
        return dg.SkipReason(decision.describe())
    context.log.info(decision.describe())
    if decision.new:
        _deliver_now(context.log, database, smtp, config, urls=bool(decision.urls))
    return None


def _deliver_now(log, database: DatabaseResource, smtp: SmtpResource, config,
                 urls: bool) -> None:
    """Try what was just queued at once; what fails waits for email_outbox_sensor."""
    if config is not None:
        report = service.deliver(database.url, config, smtp.policy())
        log.info(f"outbox delivery: {report.describe()}")
    if urls:
        report = service.deliver_urls(database.url, smtp.policy())
        log.info(f"outbox delivery (notification URLs): {report.describe()}")


def _run_sensor(job_name: str, outcome: str) -> dg.RunStatusSensorDefinition:
    kind = f"{JOB_FAMILIES[job_name]}_{outcome}"
    name = sensor_name(kind)

    @dg.run_status_sensor(
        name=name,
        run_status=_STATUSES[outcome],
        monitor_all_code_locations=True,
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=RUN_SENSOR_INTERVAL_SECONDS,
        description=f"Queues and sends the {outcome} mail of {job_name} runs (settings "
        "email_enabled, email_recipients, notify_on_success, notify_on_failure).",
    )
    def _sensor(context: dg.RunStatusSensorContext, database: DatabaseResource,
                smtp: SmtpResource):
        # A SkipReason (rather than None) for other jobs' runs: None would make Dagster write
        # "sensor acted on run" into every unrelated run's log. It ends the tick, so one run is
        # handled per tick; the outbox sensor's catch-up covers any backlog.
        if context.dagster_run.job_name != job_name:
            return dg.SkipReason(f"run {context.dagster_run.run_id} is a "
                                 f"{context.dagster_run.job_name} run, not {job_name}")
        return _notify(context, database, smtp, name)

    return _sensor


backup_success_email_sensor = _run_sensor(BACKUP_JOB, "success")
backup_failure_email_sensor = _run_sensor(BACKUP_JOB, "failure")
restore_success_email_sensor = _run_sensor(RESTORE_JOB, "success")
restore_failure_email_sensor = _run_sensor(RESTORE_JOB, "failure")
drill_failure_email_sensor = _run_sensor(DRILL_JOB, "failure")


def stopped_sensors(instance: dg.DagsterInstance) -> set[str]:
    """Names of our run-status sensors an operator has turned off in the UI."""
    if instance.schedule_storage is None:  # an in-memory instance keeps no sensor states
        return set()
    names = {sensor_name(kind) for kind in KINDS}
    return {state.name for state in instance.all_instigator_state()
            if state.name in names and state.status.value == "STOPPED"}


def unhandled_runs(instance: dg.DagsterInstance, database_url: str, *, ended_before: datetime,
                   ended_after: datetime) -> list[dg.DagsterRun]:
    """Finished backup_job and restore_job runs (and failed drill_job runs) in the window with
    no notification decision yet, except those whose run-status sensor is turned off."""
    stopped = stopped_sensors(instance)
    found: list[dg.DagsterRun] = []
    for job_name, statuses in ((BACKUP_JOB, _STATUSES), (RESTORE_JOB, _STATUSES),
                               (DRILL_JOB, {"failure": _STATUSES["failure"]})):
        records = instance.get_run_records(
            filters=dg.RunsFilter(job_name=job_name, statuses=list(statuses.values()),
                                  updated_after=ended_after),
            limit=200,
        )
        found += [r.dagster_run for r in records
                  if r.end_time is not None and r.end_time <= ended_before.timestamp()]
    decided = service.decided_runs(database_url, [run.run_id for run in found])
    out = []
    for run in found:
        kind = f"{JOB_FAMILIES[run.job_name]}_" + \
            ("success" if run.status == dg.DagsterRunStatus.SUCCESS else "failure")
        if (run.run_id, kind) not in decided and sensor_name(kind) not in stopped:
            out.append(run)
    return out


def catch_up(instance: dg.DagsterInstance, database_url: str, *, mail_configured: bool,
             ended_before: datetime, ended_after: datetime) -> list[service.Decision]:
    """Decide (and queue) for every run the run-status sensors missed."""
    return [
        service.decide(database_url, finished_run(instance, run),
                       mail_configured=mail_configured, webserver_url=webserver_url(),
                       decided_by=f"{OUTBOX_SENSOR} (catch-up)")
        for run in unhandled_runs(instance, database_url, ended_before=ended_before,
                                  ended_after=ended_after)
    ]


@dg.sensor(
    name=OUTBOX_SENSOR,
    minimum_interval_seconds=OUTBOX_SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends queued notification mails that could not be sent yet, with backoff "
    "(backup.email_outbox), and catches up finished runs no run-status sensor handled.",
)
def email_outbox_sensor(context: dg.SensorEvaluationContext, database: DatabaseResource,
                        smtp: SmtpResource):
    configured, config = _smtp_config(smtp, context.log)
    now = datetime.fromtimestamp(time.time(), UTC)
    decisions = catch_up(context.instance, database.url, mail_configured=configured,
                         ended_before=now - CATCH_UP_AFTER, ended_after=now - CATCH_UP_WINDOW)
    for decision in decisions:
        context.log.info(f"catch-up: {decision.describe()}")
    if not configured:
        mail = "SMTP_HOST is not set, so no mail is sent"
    elif config is None:
        mail = ("the SMTP settings are invalid (see the tick's log); queued mail waits in "
                "backup.email_outbox")
    else:
        mail = f"outbox: {service.deliver(database.url, config, smtp.policy()).describe()}"
    urls = service.deliver_urls(database.url, smtp.policy())
    if urls.sent or urls.retrying or urls.failed or urls.expired:
        mail += f"; notification URLs: {urls.describe()}"
    return dg.SkipReason(mail + (f"; caught up {len(decisions)} runs" if decisions else ""))


def _freshness_cursor(context: dg.SensorEvaluationContext) -> dict:
    try:
        return json.loads(context.cursor) if context.cursor else {}
    except ValueError:
        return {}


@dg.sensor(
    name=FRESHNESS_SENSOR,
    minimum_interval_seconds=FRESHNESS_SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Checks that every enabled schedule's newest completed backup is younger than "
    "its interval plus FRESHNESS_GRACE; records the backup_freshness check and sends one "
    "'backups are late' and one 'recovered' notification per breach.",
)
def backup_freshness_sensor(context: dg.SensorEvaluationContext, database: DatabaseResource,
                            smtp: SmtpResource):
    configured, config = _smtp_config(smtp, context.log)
    now = datetime.fromtimestamp(time.time(), UTC)
    evaluation = alerts.track(database.url, now=now, grace=grace_from_env(),
                              mail_configured=configured)
    late = sorted(s.schedule_id for s in evaluation.late)
    cursor = _freshness_cursor(context)
    reported = cursor.get("reported_at")
    if cursor.get("late") != late or reported is None or \
            now - datetime.fromisoformat(reported) >= FRESHNESS_REPORT_EVERY:
        # a sensor cannot log events; the instance records a check result without a run
        context.instance.report_runless_asset_event(checks.freshness_evaluation(evaluation))
        context.update_cursor(json.dumps({"late": late, "reported_at": now.isoformat()}))
    if evaluation.queued:
        _deliver_now(context.log, database, smtp, config, urls=True)
    return dg.SkipReason(evaluation.describe())


OFFSITE_SENSOR_INTERVAL_SECONDS = 300
OFFSITE_JOB = "offsite_job"
_ACTIVE = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
           dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


@dg.sensor(
    name="offsite_catch_up_sensor",
    job_name=OFFSITE_JOB,  # by name: a job object here makes Dagster warn on every load
    minimum_interval_seconds=OFFSITE_SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches offsite_job when an offsite copy is due (failed and its retry time "
    "come, left to the catch-up, or missing) or a deleted backup's copy may be deleted.",
)
def offsite_catch_up_sensor(context: dg.SensorEvaluationContext, database: DatabaseResource,
                            offsite: OffsiteResource):
    if offsite.config() is None:
        return dg.SkipReason("offsite copies are off (OFFSITE_URL is not set)")
    due = offsite_catalog.due(database.url)
    now = datetime.fromtimestamp(time.time(), UTC)
    deletable = [c for c in offsite_catalog.orphans(database.url)
                 if not offsite_cleanup.locked(c, now)]
    if not due and not deletable:
        return dg.SkipReason("no offsite copy is due")
    running = context.instance.get_run_records(
        filters=dg.RunsFilter(job_name=OFFSITE_JOB, statuses=_ACTIVE), limit=1)
    if running:
        return dg.SkipReason(f"offsite_job run {running[0].dagster_run.run_id} is still going")
    return dg.RunRequest(tags={"backup_pipeline/trigger": "offsite_catch_up"})


email_sensors = [
    backup_success_email_sensor,
    backup_failure_email_sensor,
    restore_success_email_sensor,
    restore_failure_email_sensor,
    drill_failure_email_sensor,
    email_outbox_sensor,
    backup_freshness_sensor,
]
all_sensors = [*email_sensors, offsite_catch_up_sensor]
