"""The health report as Prometheus metrics (text format, prometheus-client), built per request
from the catalog's facts in a registry of its own: nothing global, nothing stale.

Drill and offsite metrics appear only when the report carries their facts.
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from backup_pipeline.health.report import EXIT_CODES, HealthReport

PREFIX = "backup_pipeline_"
CONTENT_TYPE = CONTENT_TYPE_LATEST
_SCHEDULE = ["schedule", "frequency"]


def _timestamp(value: str | datetime | None) -> float | None:
    if value is None:
        return None
    when = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return when.timestamp()


def _gauge(registry: CollectorRegistry, name: str, doc: str, labels=()) -> Gauge:
    return Gauge(PREFIX + name, doc, list(labels), registry=registry)


def _schedules(registry: CollectorRegistry, report: HealthReport) -> None:
    success = _gauge(registry, "schedule_last_success_timestamp_seconds",
                     "Start of the newest completed backup of each enabled schedule.", _SCHEDULE)
    age = _gauge(registry, "schedule_backup_age_seconds",
                 "Age of that backup (or of the schedule, when it has none).", _SCHEDULE)
    allowed = _gauge(registry, "schedule_allowed_age_seconds",
                     "Interval plus FRESHNESS_GRACE: older than this is late.", _SCHEDULE)
    late = _gauge(registry, "schedule_late", "1 when the schedule is late, else 0.", _SCHEDULE)
    for s in report.schedules:
        labels = (s.name, s.frequency)
        if s.last_backup_at is not None:
            success.labels(*labels).set(s.last_backup_at.timestamp())
        age.labels(*labels).set(s.age_seconds)
        allowed.labels(*labels).set(s.allowed_seconds)
        late.labels(*labels).set(1 if s.late else 0)


def _last_backup(registry: CollectorRegistry, report: HealthReport) -> None:
    row = report.last_backup
    if row is None:
        return
    _gauge(registry, "last_backup_timestamp_seconds",
           "Start of the newest completed backup of any type.").set(_timestamp(row["started_at"]))
    size = _gauge(registry, "last_backup_size_bytes", "Sizes of the newest completed backup.",
                  ["part"])
    for part, key in (("archive", "size_bytes"), ("database", "database_bytes"),
                      ("documents", "documents_bytes")):
        if row.get(key) is not None:
            size.labels(part).set(row[key])
    if row.get("duration_seconds") is not None:
        _gauge(registry, "last_backup_duration_seconds",
               "Duration of the newest completed backup.").set(row["duration_seconds"])
    if row.get("document_count") is not None:
        _gauge(registry, "last_backup_documents",
               "Documents in the newest completed backup.").set(row["document_count"])


def _drill_and_offsite(registry: CollectorRegistry, report: HealthReport) -> None:
    drill = report.drill
    if drill is not None:
        _gauge(registry, "restore_drill_passed", "1 when the last restore drill passed.") \
            .set(1 if drill.passed else 0)
        _gauge(registry, "restore_drill_timestamp_seconds", "When the last drill ran.") \
            .set(drill.at.timestamp())
        if drill.rto_seconds is not None:
            _gauge(registry, "restore_drill_rto_seconds",
                   "Restore time of the last drill.").set(drill.rto_seconds)
    if report.offsite is not None and report.offsite.get("lag_seconds") is not None:
        lag = _gauge(registry, "offsite_lag_seconds", "Seconds since the oldest completed "
                     "backup without an offsite copy was completed (0: all copied).")
        lag.set(report.offsite["lag_seconds"])


def render(report: HealthReport) -> bytes:
    registry = CollectorRegistry(auto_describe=True)
    _gauge(registry, "health_status", "0 healthy, 1 warning, 2 failing (as the health "
           "command's exit code).").set(EXIT_CODES[report.status])
    _gauge(registry, "health_checked_timestamp_seconds", "When these facts were read.") \
        .set(report.checked_at.timestamp())
    _schedules(registry, report)
    _last_backup(registry, report)
    _drill_and_offsite(registry, report)
    messages = _gauge(registry, "outbox_messages",
                      "Notification messages in the outbox by channel and state.",
                      ["channel", "state"])
    for entry in report.outbox["by_channel_state"]:
        messages.labels(entry["channel"], entry["state"]).set(entry["count"])
    _gauge(registry, "outbox_waiting", "Notifications not sent yet.") \
        .set(report.outbox["waiting"])
    _gauge(registry, "outbox_retrying", "Notifications whose last attempt failed.") \
        .set(report.outbox["retrying"])
    return generate_latest(registry)
