"""The admin HTTP API: the seed's endpoints under /api/admin/backups, as a FastAPI app.

`create_app()` checks the environment first and refuses to build an app without
ADMIN_API_TOKEN, a DATABASE_URL or a migrated catalog.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from backup_pipeline.api import (
    backups,
    drill,
    errors,
    metrics,
    offsite,
    restore,
    schedules,
    settings,
    upload,
)
from backup_pipeline.api.auth import BearerAuth
from backup_pipeline.api.config import ApiConfig
from backup_pipeline.api.launcher import DagsterLauncher
from backup_pipeline.catalog.migrate import pending
from backup_pipeline.errors import ConfigError

TITLE = "backup_pipeline admin API"
OPENAPI_PATH = "/openapi.json"
# the fixed paths (/schedules, /settings, /upload, /restore/status) before /{backup_id}
ROUTERS = [schedules.router, settings.router, restore.router, drill.router, upload.router,
           offsite.router, backups.router, metrics.router]


def create_app(environ: Mapping[str, str] | None = None) -> FastAPI:
    config = ApiConfig.from_env(environ)
    missing = pending(config.settings.database_url)
    if missing:
        raise ConfigError(f"the catalog needs migrations {', '.join(missing)}: "
                          "run 'backup-pipeline migrate' first")
    # the OpenAPI document is served below behind the same token; no browser UI, since a
    # browser cannot send the token when it fetches the document
    app = FastAPI(title=TITLE, version="1", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.config = config
    app.state.launcher = DagsterLauncher(config.dagster_url)
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router, responses=errors.ERROR_RESPONSES)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=TITLE, version="1", routes=app.routes,
                                 description="Every endpoint needs `Authorization: Bearer "
                                 "<ADMIN_API_TOKEN>`.")
            schema.setdefault("components", {})["securitySchemes"] = {
                "adminToken": {"type": "http", "scheme": "bearer"}}
            schema["security"] = [{"adminToken": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
    app.add_api_route(OPENAPI_PATH, openapi, methods=["GET"], include_in_schema=False)
    app.add_middleware(BearerAuth, token=config.token)
    return app
