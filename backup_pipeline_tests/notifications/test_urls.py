"""Notification URLs carry tokens: they are shown as scheme and host only, and scrubbed from
error text."""

from __future__ import annotations

import pytest

from backup_pipeline.notifications.urls import notify_type, redact, scrub


@pytest.mark.parametrize(("url", "shown"), [
    ("json://127.0.0.1:8080/hooks/tok-123456", "json://127.0.0.1"),
    ("jsons://user:pw-secret@hooks.example.com/x?token=abc", "jsons://hooks.example.com"),
    ("tgram://123456789:AAE-token-part/-100123", "tgram://***"),
    ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ", "slack://***"),
    ("ntfys://ntfy.sh/my-private-topic", "ntfys://ntfy.sh"),
    ("not a url", "(not a URL)"),
])
def test_redact_keeps_scheme_and_host_only(url: str, shown: str):
    assert redact(url) == shown


def test_scrub_removes_every_part_of_the_url():
    url = "jsons://user:pw-secret@hooks.example.com/v1/tok-123456?key=k-98765"
    text = ("POST https://hooks.example.com/v1/tok-123456?key=k-98765 failed for user with "
            "pw-secret, tok-123456 and k-98765")
    cleaned = scrub(text, url)
    for secret in ("pw-secret", "tok-123456", "k-98765"):
        assert secret not in cleaned
    assert "https://hooks.example.com" in cleaned


def test_notify_types_follow_the_kind():
    assert notify_type("backup_failure") == notify_type("freshness_late") == "failure"
    assert notify_type("restore_success") == notify_type("freshness_recovered") == "success"
    assert notify_type("something_else") == "info"
