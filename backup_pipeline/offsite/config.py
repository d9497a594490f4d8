"""Where offsite copies go and how they are sealed, read from the environment.

OFFSITE_URL=s3://bucket[/prefix] turns copies on; S3_ENDPOINT_URL points at any S3-compatible
service; credentials come the way boto3 finds them (AWS_* variables, profiles, instance roles),
so none of them is ever held here. Copies are encrypted to OFFSITE_AGE_RECIPIENTS unless
OFFSITE_ENCRYPTION=none says so explicitly; AGE_IDENTITY_FILE is only needed to pull.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from backup_pipeline.errors import ConfigError

AGE_SUFFIX = ".age"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class OffsiteError(ConfigError):
    """Offsite storage refused, was unreachable, or a copy could not be read back."""


@dataclass(frozen=True)
class OffsiteConfig:
    bucket: str
    prefix: str
    endpoint_url: str | None
    region: str | None
    recipients: tuple[str, ...]
    identity_file: Path | None
    object_lock_days: float | None

    @property
    def encrypted(self) -> bool:
        return bool(self.recipients)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def object_key(self, file_name: str) -> str:
        name = file_name + (AGE_SUFFIX if self.encrypted else "")
        return f"{self.prefix}/{name}" if self.prefix else name

    def lock_period(self) -> timedelta | None:
        return timedelta(days=self.object_lock_days) if self.object_lock_days else None

    def describe(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        sealed = f"age, {len(self.recipients)} recipient(s)" if self.encrypted else "unencrypted"
        lock = f", Object Lock {self.object_lock_days:g} days" if self.object_lock_days else ""
        return f"{self.url}{where} ({sealed}{lock})"


def parse_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of s3://bucket[/prefix]; a one-line error for anything else."""
    if not url.startswith("s3://"):
        raise ConfigError(f"OFFSITE_URL={url!r} must look like s3://bucket[/prefix]")
    bucket, _, prefix = url[len("s3://"):].partition("/")
    if not _BUCKET.match(bucket):
        raise ConfigError(f"OFFSITE_URL names the bucket {bucket!r}, which is not a valid S3 "
                          "bucket name (3-63 lower-case letters, digits, dots and hyphens)")
    return bucket, prefix.strip("/")


def _recipients(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = env.get("OFFSITE_AGE_RECIPIENTS", "")
    recipients = tuple(r.strip() for r in raw.split(",") if r.strip())
    mode = env.get("OFFSITE_ENCRYPTION", "").strip().lower()
    if mode not in ("", "age", "none"):
        raise ConfigError(f"OFFSITE_ENCRYPTION={mode!r} is not known; use age (the default) "
                          "or none")
    if mode == "none":
        if recipients:
            raise ConfigError("OFFSITE_ENCRYPTION=none and OFFSITE_AGE_RECIPIENTS are both "
                              "set; unset one of them")
        return ()
    if not recipients:
        raise ConfigError("OFFSITE_URL is set but OFFSITE_AGE_RECIPIENTS is not: set the age "
                          "public keys (age1...) copies are encrypted to, or "
                          "OFFSITE_ENCRYPTION=none to copy unencrypted")
    for recipient in recipients:
        if not recipient.startswith("age1"):
            raise ConfigError(f"OFFSITE_AGE_RECIPIENTS: {recipient[:20]!r} is not an age "
                              "public key (age1...)")
    return recipients


def _lock_days(env: Mapping[str, str]) -> float | None:
    raw = env.get("OFFSITE_OBJECT_LOCK_DAYS", "").strip()
    if not raw:
        return None
    try:
        days = float(raw)
    except ValueError:
        days = -1.0
    if not 0 < days <= 36500:
        raise ConfigError(f"OFFSITE_OBJECT_LOCK_DAYS={raw!r} must be a number of days above 0")
    return days


def from_env(environ: Mapping[str, str] | None = None) -> OffsiteConfig | None:
    """The offsite target, or None when OFFSITE_URL is unset (copies are off)."""
    env = os.environ if environ is None else environ
    url = env.get("OFFSITE_URL", "").strip()
    if not url:
        return None
    bucket, prefix = parse_url(url)
    identity = env.get("AGE_IDENTITY_FILE", "").strip()
    return OffsiteConfig(
        bucket=bucket, prefix=prefix,
        endpoint_url=env.get("S3_ENDPOINT_URL", "").strip() or None,
        region=(env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "").strip() or None,
        recipients=_recipients(env),
        identity_file=Path(identity) if identity else None,
        object_lock_days=_lock_days(env),
    )


def required(environ: Mapping[str, str] | None = None) -> OffsiteConfig:
    config = from_env(environ)
    if config is None:
        raise ConfigError("offsite copies are off: set OFFSITE_URL=s3://bucket[/prefix]")
    return config
