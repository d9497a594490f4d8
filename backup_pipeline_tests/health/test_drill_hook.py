"""The hook for restore drills: the newest `restore_drill` check evaluation in the instance
reaches the health report (a failed drill is failing) and the metrics."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
from prometheus_client.parser import text_string_to_metric_families

from backup_pipeline.catalog.migrate import migrate
from backup_pipeline.checks import DRILL_CHECK, last_drill
from backup_pipeline.health import metrics, report
from backup_pipeline.ops.backup import BACKUP_ASSET


def test_the_last_drill_is_read_judged_and_exposed(databases):
    url = databases.create()
    migrate(url)
    with dg.DagsterInstance.ephemeral() as instance:
        assert last_drill(instance) is None
        for passed, rto in ((True, 41.5), (False, 73.0)):
            instance.report_runless_asset_event(dg.AssetCheckEvaluation(
                asset_key=BACKUP_ASSET, check_name=DRILL_CHECK, passed=passed,
                metadata={"rto_seconds": rto, "backup_id": "b-1"}))
        drill = last_drill(instance)
    assert (drill.passed, drill.rto_seconds, drill.backup_id) == (False, 73.0, "b-1")
    facts = report.build(url, now=datetime.now(UTC), grace=0.5, drill=drill)
    assert facts.exit_code == 2 and "the last restore drill failed" in facts.failing
    assert facts.as_json()["drill"]["rto_seconds"] == 73.0
    found = {s.name: s.value for f in text_string_to_metric_families(
        metrics.render(facts).decode()) for s in f.samples}
    assert found["backup_pipeline_restore_drill_passed"] == 0
    assert found["backup_pipeline_restore_drill_rto_seconds"] == 73.0
