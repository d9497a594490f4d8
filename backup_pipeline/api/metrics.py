"""`GET /metrics`: the health facts in Prometheus' text format, behind the same bearer token
as every other route (configure the scrape with `authorization: {credentials: <token>}`)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.responses import Response

from backup_pipeline.api.deps import Config
from backup_pipeline.checks import drill_from_instance
from backup_pipeline.health import metrics, report
from backup_pipeline.health.freshness import grace_from_env

router = APIRouter()


def _render(database_url: str) -> bytes:
    drill, _ = drill_from_instance()
    facts = report.build(database_url, now=datetime.now(UTC), grace=grace_from_env(),
                         drill=drill)
    return metrics.render(facts)


@router.get("/metrics", include_in_schema=False)
def get_metrics(config: Config) -> Response:
    return Response(_render(config.settings.database_url), media_type=metrics.CONTENT_TYPE)
