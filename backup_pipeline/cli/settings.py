"""`settings get` and `settings set KEY=VALUE ...`: the global notification settings.

The settings module (and pydantic with it) is imported by these commands only."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from backup_pipeline.cli.output import Result
from backup_pipeline.settings import Settings

if TYPE_CHECKING:
    from backup_pipeline.notifications import settings as notification_settings


def register(sub, common) -> None:
    p = sub.add_parser("settings", help="show or change the global settings")
    actions = p.add_subparsers(dest="settings_command", metavar="ACTION", required=True)
    g = actions.add_parser("get", parents=[common], help="show the settings")
    g.set_defaults(handler=run_get)
    s = actions.add_parser(
        "set", parents=[common], help="change settings (all or nothing)",
        description="Keys: email_enabled (true/false), email_recipients (comma-separated "
        "addresses, empty for none), notify_on_success (true/false), notify_on_failure "
        "(true/false), notify_urls (Apprise URLs, comma- or newline-separated, empty for none).",
    )
    s.add_argument("assignments", nargs="+", metavar="KEY=VALUE")
    s.set_defaults(handler=run_set)


def _text(current: notification_settings.NotificationSettings) -> str:
    data = current.public_json()
    width = max(len(k) for k in data)
    lines = []
    for key, value in data.items():
        shown = (", ".join(value) or "(none)") if isinstance(value, list) else str(value).lower()
        lines.append(f"{key.ljust(width)}  {shown}")
    if not os.environ.get("SMTP_HOST", "").strip():
        lines.append("(SMTP_HOST is not set in this environment: no mail is sent from here)")
    return "\n".join(lines)


def run_get(args) -> Result:
    from backup_pipeline.notifications import settings as notification_settings

    current = notification_settings.load(Settings.from_env().database_url)
    return Result(current.public_json(), _text(current))


def run_set(args) -> Result:
    from backup_pipeline.notifications import settings as notification_settings

    changes = notification_settings.parse_assignments(args.assignments)
    updated = notification_settings.update(Settings.from_env().database_url, changes)
    return Result(updated.public_json(), f"updated {', '.join(changes)}\n{_text(updated)}")
