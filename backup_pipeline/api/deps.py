"""What a route gets injected: the API's configuration and the Dagster launcher."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from backup_pipeline.api.config import ApiConfig
from backup_pipeline.api.launcher import DagsterLauncher


def _config(request: Request) -> ApiConfig:
    return request.app.state.config


def _launcher(request: Request) -> DagsterLauncher:
    return request.app.state.launcher


Config = Annotated[ApiConfig, Depends(_config)]
Launcher = Annotated[DagsterLauncher, Depends(_launcher)]
