"""A clone of the repository alone runs the suite: nothing the tests or the Makefile read
lies outside it."""

from __future__ import annotations

import re

from backup_pipeline_tests.conftest import PAGILA_DIR, REPO


def test_the_pagila_fixture_is_inside_the_repository_with_its_licence():
    assert PAGILA_DIR.resolve().is_relative_to(REPO)
    for name in ("pagila-schema.sql", "pagila-data.sql", "LICENSE.txt"):
        assert (PAGILA_DIR / name).is_file(), name


def test_no_test_or_build_file_reaches_beside_the_repository():
    outside = re.compile(r"\.\./shared|/ \"shared\"|parent / \"shared\"")
    files = [REPO / "Makefile", REPO / ".ci" / "run",
             *(REPO / "backup_pipeline_tests").rglob("*.py"), *(REPO / "scripts").rglob("*.py")]
    offenders = [str(f.relative_to(REPO)) for f in files
                 if f.name != "test_self_contained.py"
                 and outside.search(f.read_text(encoding="utf-8"))]
    assert offenders == []
