"""Notification settings, stored one key per row in `backup.backup_settings` (value jsonb).

Every change is validated as a whole before anything is written, in one transaction: a bad value
leaves the stored settings exactly as they were.
"""

from __future__ import annotations

import re
from typing import Any

from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from backup_pipeline.catalog.history import check_migrated
from backup_pipeline.errors import ConfigError
from backup_pipeline.notifications.urls import parse_urls, redact
from backup_pipeline.postgres import connect

# A practical subset of RFC 5322 addr-spec: dot-atom local part, dot-separated domain labels.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*$")

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def validate_address(text: str) -> str:
    """The address, trimmed; a ConfigError naming it when it is not a plain `user@domain`."""
    address = str(text).strip()
    if not address:
        raise ConfigError("an email address is empty")
    if len(address) > 254 or not _ADDRESS.match(address):
        raise ConfigError(f"{address!r} is not a valid email address (expected user@domain)")
    return address


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"expected true or false, not {value!r}")


def parse_recipients(value: Any) -> list[str]:
    """Comma-separated text or a list; duplicates (ignoring case) are dropped, order kept."""
    if value is None:
        return []
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ConfigError(f"expected comma-separated addresses, not {value!r}")
    out: list[str] = []
    seen: set[str] = set()
    for item in items:
        if isinstance(value, str) and not str(item).strip():
            continue  # "a@x.com," and "" are fine in a comma-separated list
        address = validate_address(item)
        if address.lower() not in seen:
            seen.add(address.lower())
            out.append(address)
    return out


class NotificationSettings(BaseModel):
    """Defaults: notifications on, failure mails only, no recipients (so nothing is sent)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email_enabled: bool = True
    email_recipients: tuple[str, ...] = ()
    notify_on_success: bool = False
    notify_on_failure: bool = True
    notify_urls: tuple[str, ...] = ()

    @field_validator("email_enabled", "notify_on_success", "notify_on_failure", mode="before")
    @classmethod
    def _bool(cls, value: Any) -> bool:
        try:
            return parse_bool(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("email_recipients", "notify_urls", mode="before")
    @classmethod
    def _lists(cls, value: Any, info: ValidationInfo) -> tuple[str, ...]:
        parse = parse_recipients if info.field_name == "email_recipients" else parse_urls
        try:
            return tuple(parse(value))
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    def as_json(self) -> dict[str, Any]:
        """What is stored: notification URLs whole, tokens and all."""
        data = self.model_dump()
        data["email_recipients"] = list(self.email_recipients)
        data["notify_urls"] = list(self.notify_urls)
        return data

    def public_json(self) -> dict[str, Any]:
        """What is shown: each notification URL as scheme and host only."""
        return {**self.as_json(), "notify_urls": [redact(u) for u in self.notify_urls]}


KEYS = tuple(NotificationSettings.model_fields)


def build(values: dict[str, Any]) -> NotificationSettings:
    """Validate values (text as typed on a command line, or JSON values) into settings."""
    unknown = sorted(set(values) - set(KEYS))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r}; known settings: {', '.join(KEYS)}")
    try:
        return NotificationSettings(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(p) for p in error["loc"]) or "settings"
        cause = error.get("ctx", {}).get("error")
        message = str(cause) if isinstance(cause, ValueError) else error["msg"]
        raise ConfigError(f"invalid setting {key}: {message}") from None


def _stored(conn) -> dict[str, Any]:
    rows = conn.execute(
        "SELECT key, value FROM backup.backup_settings WHERE key = ANY(%s)", (list(KEYS),)
    ).fetchall()
    return dict(rows)


def load(database_url: str) -> NotificationSettings:
    with connect(database_url) as conn:
        check_migrated(conn)
        stored = _stored(conn)
    try:
        return build(stored)
    except ConfigError as exc:
        raise ConfigError(f"stored notification settings are invalid ({exc}); fix them with "
                          "'backup-pipeline settings set'") from None


def update(database_url: str, changes: dict[str, Any]) -> NotificationSettings:
    """Apply changes on top of the stored settings; all of them or, on any error, none."""
    if not changes:
        raise ConfigError("nothing to set: give KEY=VALUE pairs")
    with connect(database_url) as conn:
        check_migrated(conn)
        with conn.transaction():
            # one writer at a time, so two concurrent updates cannot mix into an invalid whole
            conn.execute("LOCK TABLE backup.backup_settings IN SHARE ROW EXCLUSIVE MODE")
            current = _stored(conn)
            merged = build({**current, **changes})
            data = merged.as_json()
            for key in changes:
                conn.execute(
                    "INSERT INTO backup.backup_settings (key, value, updated_at)"
                    " VALUES (%s, %s, now()) ON CONFLICT (key)"
                    " DO UPDATE SET value = excluded.value, updated_at = now()",
                    (key, Jsonb(data[key])),
                )
    return merged


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """`KEY=VALUE` arguments into a dict; a malformed or repeated pair is an error."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"expected KEY=VALUE, got {pair!r}")
        if key in out:
            raise ConfigError(f"{key} is given twice")
        out[key] = value
    return out
