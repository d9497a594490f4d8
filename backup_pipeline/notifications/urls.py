"""Notification URLs (setting `notify_urls`), sent through Apprise: Slack, Discord, Telegram,
ntfy, Matrix, a generic JSON webhook (`json://host/path`), healthchecks.io-style pings...

An Apprise URL often carries a token (in its path, user, password, query, or even as its
"host", like `tgram://BOT_TOKEN/CHAT`), so no URL is ever shown whole: `redact` keeps the scheme
and, when it is a real host name, the host; every error passes through `scrub`.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import unquote, urlsplit

from backup_pipeline.errors import BackupPipelineError, ConfigError

MAX_URL = 2000
_HOSTNAME = re.compile(r"^(localhost|[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+|\[[0-9A-Fa-f:.]+\])$")
_ANY_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
# Apprise's notification types by the end of our message kinds
_TYPES = {"failure": "failure", "late": "failure", "success": "success", "recovered": "success"}


class NotifyError(BackupPipelineError):
    """A notification URL did not take the message (its text never holds the URL's secrets)."""


def redact(url: str) -> str:
    """`scheme://host`, the host only when it is a host name (never a token in its place)."""
    text = str(url).strip()
    scheme, sep, rest = text.partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        return "(not a URL)"
    try:
        host = urlsplit(f"x://{rest}").hostname or ""
    except ValueError:
        host = ""
    return f"{scheme.lower()}://{host}" if _HOSTNAME.match(host) else f"{scheme.lower()}://***"


def _secrets(url: str) -> list[str]:
    """The parts of `url` that may be secret, longest first."""
    _, _, rest = url.partition("://")
    parts = re.split(r"[/@:?&=#,]", rest)
    found = {p for p in parts + [unquote(p) for p in parts] if len(p) >= 4}
    return sorted(found, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """`text` with `url`'s parts, and any URL in it, reduced to what `redact` shows."""
    text = _ANY_URL.sub(lambda m: redact(m.group(0)), text)
    host = redact(url).partition("://")[2]
    for secret in _secrets(url):
        if secret != host:
            text = text.replace(secret, "***")
    return text


def validate_url(text: Any) -> str:
    url = str(text).strip()
    if not url:
        raise ConfigError("a notification URL is empty")
    if len(url) > MAX_URL or any(c.isspace() for c in url):
        raise ConfigError(f"notification URL {redact(url)} is malformed")
    import apprise  # imported when needed: it takes most of a second

    if apprise.Apprise.instantiate(url, suppress_exceptions=True) is None:
        raise ConfigError(f"notification URL {redact(url)} is not one Apprise understands "
                          "(see https://github.com/caronc/apprise/wiki)")
    return url


def parse_urls(value: Any) -> list[str]:
    """Comma- or newline-separated text, or a list; duplicates dropped, order kept."""
    if value is None:
        return []
    if isinstance(value, str):
        items = [i for i in re.split(r"[,\n]", value) if i.strip()]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ConfigError("expected comma-separated notification URLs")
    out: list[str] = []
    for item in items:
        url = validate_url(item)
        if url not in out:
            out.append(url)
    return out


def notify_type(kind: str) -> str:
    """failure/late look like failures, success/recovered like successes, the rest info."""
    return next((t for suffix, t in _TYPES.items() if kind.endswith(suffix)), "info")


def send(url: str, *, title: str, body: str, kind: str, timeout: float = 30) -> None:
    """Deliver one message to one URL; NotifyError (scrubbed) when the target did not
    confirm it."""
    import apprise

    target = apprise.Apprise()
    if not target.add(url):
        raise NotifyError(f"notification URL {redact(url)} is not one Apprise understands")
    with apprise.LogCapture(level=logging.WARNING) as captured:
        result = target.notify(body=body, title=title, notify_type=notify_type(kind),
                               timeout=timeout)
        log = captured.getvalue()
    if not result:
        lines = [ln.split(" - ", 2)[-1] for ln in log.splitlines() if ln.strip()]
        detail = scrub(" ".join(lines[-2:]), url) if lines else "no answer"
        raise NotifyError(f"{redact(url)} did not take the message: {detail}")
