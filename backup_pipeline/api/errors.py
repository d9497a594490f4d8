"""Every error answers with `{"error": code, "message": one line}` and the right status.

No answer ever carries a filesystem path or DATABASE_URL's password: messages pass through
`redact` and `scrub_paths`, and unexpected errors are logged on the server and answered with a
generic line.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from backup_pipeline.errors import (
    ArchiveError,
    BackupPipelineError,
    ConfigError,
    ConflictError,
    NotFoundError,
    UnavailableError,
)
from backup_pipeline.postgres import redact
from backup_pipeline.restore.errors import RestoreBusyError, RestoreError

log = logging.getLogger("backup_pipeline.api")

# an absolute path of two or more parts, not part of a URL (http://host/x) or a word
_PATH = re.compile(r"(?<![\w:/.~-])(?:/[^\s/'\"(),;:]+){2,}/?")


class ErrorBody(BaseModel):
    error: str
    message: str
    details: list[dict[str, Any]] | None = None


class TooLargeError(BackupPipelineError):
    """An upload beyond the size limit."""


def scrub_paths(message: str) -> str:
    """Replace absolute paths by their last part (`/srv/backups/x.tar.gz` -> `x.tar.gz`)."""
    return _PATH.sub(lambda m: m.group(0).rstrip("/").rsplit("/", 1)[-1], message)


def error_response(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    body = {"error": code, "message": scrub_paths(redact(" ".join(message.split())))}
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status)


# most specific first: UnavailableError is a ConfigError
_DOMAIN_ERRORS: tuple[tuple[type[BackupPipelineError], int, str], ...] = (
    (UnavailableError, 503, "unavailable"),
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (RestoreBusyError, 409, "conflict"),
    (TooLargeError, 413, "too_large"),
    (ArchiveError, 422, "invalid_archive"),
    (RestoreError, 422, "refused"),
    (ConfigError, 422, "invalid_input"),
)

_HTTP_CODES = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
               413: "too_large", 415: "unsupported_media_type"}

# documented on every operation of the OpenAPI document
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong bearer token"},
    422: {"model": ErrorBody, "description": "Invalid input"},
    503: {"model": ErrorBody, "description": "The database or Dagster's webserver is down"},
}


def _domain_error(request: Request, exc: BackupPipelineError) -> JSONResponse:
    for cls, status, code in _DOMAIN_ERRORS:
        if isinstance(exc, cls):
            return error_response(status, code, str(exc))
    # an expected failure of the operation itself (a file that cannot be removed, ...)
    log.warning("%s %s failed: %s", request.method, request.url.path, exc)
    return error_response(500, "failed", str(exc))


def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    details = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type")}
               for e in exc.errors()]
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"] if p != "body") or "request"
    return error_response(422, "invalid_input", f"{where}: {first['msg']}", details=details)


def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 400:  # a body FastAPI could not parse: invalid input like any other
        return error_response(422, "invalid_input", f"the request body: {exc.detail}")
    code = _HTTP_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code
    if exc.status_code == 404 and message == "Not Found":
        message = f"no endpoint {request.method} {request.url.path}"
    response = error_response(exc.status_code, code, message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("%s %s failed unexpectedly", request.method, request.url.path)
    return error_response(500, "internal_error",
                          f"internal error ({type(exc).__name__}); see the API server's log")


def install(app: FastAPI) -> None:
    app.add_exception_handler(BackupPipelineError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
