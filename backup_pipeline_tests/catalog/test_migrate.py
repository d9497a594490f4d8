"""The migration runner: versioned, idempotent, safe when several processes run it at once."""

from concurrent.futures import ThreadPoolExecutor

import psycopg

from backup_pipeline.catalog.migrate import available, migrate, pending


def test_migrations_apply_once(databases):
    url = databases.create()
    assert pending(url) == [f"{m.version:03d}_{m.name}" for m in available()]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: migrate(url), range(4)))
    assert sorted(len(r) for r in results) == [0, 0, 0, len(available())]
    assert pending(url) == [] and migrate(url) == []
    with psycopg.connect(url) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'backup'")}
    assert {"backup_schedules", "backup_history", "backup_settings"} <= tables
