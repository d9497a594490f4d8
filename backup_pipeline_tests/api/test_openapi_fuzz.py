"""A schema-driven run over the OpenAPI document: no input gets a server error.

The document is fetched over HTTP with the token, like any client would, and every operation is
called with generated valid and invalid input. Dagster's webserver is down here, so creates
answer 503 instead of launching dozens of backups.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from backup_pipeline.api import create_app
from backup_pipeline.catalog import history
from backup_pipeline.catalog.migrate import migrate
from backup_pipeline_tests.api.conftest import (
    TOKEN,
    ThreadedServer,
    api_environ,
    unreachable_url,
)
from backup_pipeline_tests.conftest import AppEnv, make_dagster_home, make_documents

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def fuzz_server(databases, tmp_path_factory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("fuzz")
    env = AppEnv(databases.create(), make_documents(root / "documents"), root / "backups",
                 make_dagster_home(root / "dagster_home"))
    migrate(env.database_url)
    for backup_type in ("manual", "uploaded"):  # something to list
        row = history.create(env.database_url, backup_type=backup_type, trigger="test")
        history.fail(env.database_url, row["id"], "made for the fuzz run")
    served = ThreadedServer.start(create_app(
        api_environ(env, unreachable_url(), API_UPLOAD_MAX_BYTES="65536")))
    yield served.url
    served.stop()


EXAMPLES = 25  # per operation and generation mode


def operations(server_url: str) -> list:
    """The operations of the document fetched over HTTP with the token, as a client would."""
    schema = schemathesis.openapi.from_url(f"{server_url}/openapi.json", headers=AUTH)
    return [result.ok() for result in schema.get_all_operations()]


def fuzz(operation, mode: GenerationMode, seen: set[int]):
    """A hypothesis test calling one operation with generated input."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    def call(case):
        response = case.call(headers=AUTH, timeout=60)
        # 503 is the documented answer while Dagster's webserver is down; nothing else >= 500
        if response.status_code == 503:
            assert response.json()["error"] == "unavailable"
        else:
            case.validate_response(response, checks=[not_a_server_error])
        assert response.headers["content-type"][0].startswith("application/json")
        # negative cases may leave the token out on purpose
        assert response.status_code != 401 or mode is GenerationMode.NEGATIVE
        assert "/tmp" not in response.text
        seen.add(response.status_code)

    return call


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
def test_no_input_gets_a_server_error(fuzz_server: str, mode: GenerationMode):
    found = operations(fuzz_server)
    assert len(found) >= 5
    seen: dict[str, set[int]] = {operation.label: set() for operation in found}
    for operation in found:
        fuzz(operation, mode, seen[operation.label])()
    print(mode.value, {label: sorted(codes) for label, codes in seen.items()})
