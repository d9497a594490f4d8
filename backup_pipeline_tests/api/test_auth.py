"""Admin authentication on every endpoint, and the server refusing to start without a token."""

from __future__ import annotations

import re
import uuid

import pytest

from backup_pipeline.api import create_app
from backup_pipeline.api.auth import token_matches
from backup_pipeline.api.config import ApiConfig
from backup_pipeline.errors import ConfigError
from backup_pipeline_tests.api.conftest import TOKEN, ApiServer
from backup_pipeline_tests.conftest import AppEnv
from backup_pipeline_tests.helpers import run_cli


def every_endpoint(environ: dict[str, str]) -> list[tuple[str, str]]:
    """(method, path) of every operation in the OpenAPI document, ids filled with an unknown
    UUID, and the document itself."""
    document = create_app(environ).openapi()
    found = [("GET", "/openapi.json")]
    for template, operations in document["paths"].items():
        path = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), template)
        found += [(method.upper(), path) for method in sorted(operations)]
    return found


WRONG_TOKENS = [
    None,                                   # no Authorization header
    "",                                     # "Bearer" and nothing
    TOKEN[:-1] + ("x" if TOKEN[-1] != "x" else "y"),  # one character off
    TOKEN[:-1],                             # a prefix
    TOKEN + "x",                            # longer
    TOKEN.upper(),
]


def test_every_endpoint_refuses_a_missing_or_wrong_token(api: ApiServer):
    endpoints = every_endpoint(api.environ) + [("GET", "/no/such/path")]
    assert len(endpoints) >= 7
    for method, path in endpoints:
        for token in WRONG_TOKENS:
            with api.client(token) as client:
                response = client.request(method, path, json={"note": "x"})
            assert response.status_code == 401, (method, path, token, response.text)
            assert response.json()["error"] == "unauthorized"
            assert response.headers["www-authenticate"].startswith("Bearer")
        # another scheme with the right secret is not accepted either
        with api.client(None, headers={"Authorization": f"Basic {TOKEN}"}) as client:
            assert client.request(method, path).status_code == 401


def test_every_endpoint_accepts_the_token(api: ApiServer):
    """With the token every endpoint answers for itself: never 401, never a server error."""
    with api.client() as client:
        for method, path in every_endpoint(api.environ):
            response = client.request(method, path)
            assert response.status_code not in (401, 500), (method, path, response.text)
            assert response.headers["content-type"].startswith("application/json")


def test_the_token_is_compared_as_a_whole():
    expected = TOKEN.encode()
    assert token_matches(f"Bearer {TOKEN}".encode(), expected)
    assert token_matches(f"bearer {TOKEN}".encode(), expected)  # the scheme is case-insensitive
    for wrong in (None, b"", b"Bearer", TOKEN.encode(), f"Token {TOKEN}".encode(),
                  f"Bearer {TOKEN[:-1]}".encode()):
        assert not token_matches(wrong, expected)


def test_no_token_no_server(app_env: AppEnv):
    environ = {**app_env.environ(), "ADMIN_API_TOKEN": "  "}
    with pytest.raises(ConfigError, match="ADMIN_API_TOKEN is not set"):
        ApiConfig.from_env(environ)
    environ.pop("ADMIN_API_TOKEN")
    done = run_cli("api", "--port", "1", env=environ)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "backup-pipeline: error: ADMIN_API_TOKEN is not set: the admin API refuses to start "
        "without a token"]


def test_unmigrated_catalog_no_server(databases, tmp_path):
    environ = {"DATABASE_URL": databases.create(), "ADMIN_API_TOKEN": TOKEN,
               "BACKUP_DIR": str(tmp_path)}
    with pytest.raises(ConfigError, match="run 'backup-pipeline migrate' first"):
        create_app(environ)
