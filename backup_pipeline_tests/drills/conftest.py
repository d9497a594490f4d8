"""Fixtures of the drill tests: the restore tests' roles."""

from backup_pipeline_tests.restore.conftest import make_role  # noqa: F401 - a fixture
