"""What the admin API needs from the environment, checked once when it starts."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from backup_pipeline.api.launcher import DEFAULT_URL
from backup_pipeline.errors import ConfigError
from backup_pipeline.offsite import config as offsite_config
from backup_pipeline.offsite.config import OffsiteConfig
from backup_pipeline.settings import Settings

DEFAULT_UPLOAD_LIMIT = 20 * 1024**3  # 20 GiB


@dataclass(frozen=True)
class ApiConfig:
    token: str
    dagster_url: str
    upload_limit: int
    settings: Settings
    offsite: OffsiteConfig | None = None  # OFFSITE_URL unset: no offsite copies

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiConfig:
        env = os.environ if environ is None else environ
        token = env.get("ADMIN_API_TOKEN", "").strip()
        if not token:
            raise ConfigError("ADMIN_API_TOKEN is not set: the admin API refuses to start "
                              "without a token")
        limit_text = env.get("API_UPLOAD_MAX_BYTES", "").strip()
        try:
            limit = int(limit_text) if limit_text else DEFAULT_UPLOAD_LIMIT
        except ValueError:
            raise ConfigError(f"API_UPLOAD_MAX_BYTES must be a number of bytes, "
                              f"not {limit_text!r}") from None
        if limit < 1:
            raise ConfigError("API_UPLOAD_MAX_BYTES must be at least 1")
        return cls(
            token=token,
            dagster_url=env.get("DAGSTER_WEBSERVER_URL", "").strip() or DEFAULT_URL,
            upload_limit=limit,
            settings=Settings.from_env(dict(env)),
            offsite=offsite_config.from_env(env),  # a bad offsite setting: refused at start
        )
