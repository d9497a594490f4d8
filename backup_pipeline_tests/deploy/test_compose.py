"""docker-compose.yml validates with .env.example's values, and has the shape the README
promises: every service health-checked and restarted, one daemon, the UI on localhost only,
the documents and backups volumes where runs execute, the image buildable from what is here.

`docker-compose config` (Debian's docker-compose) interpolates and validates without an engine.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from backup_pipeline_tests.deploy.stack import REPO

COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "docker" / "Dockerfile"
OUR_SERVICES = {"migrate", "code-server", "dagster-webserver", "dagster-daemon", "admin-api"}
SERVICES = OUR_SERVICES | {"postgres", "dagster-postgres", "redis", "mailpit", "minio",
                           "minio-setup"}
ONE_SHOT = {"migrate", "minio-setup"}


def compose(env_file: Path, *args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (Debian package docker-compose; "
                    ".ci/run installs it)")
    return subprocess.run([binary, "--env-file", str(env_file), "-f", str(COMPOSE_FILE),
                           *args], capture_output=True, text=True, cwd=env_file.parent)


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / ".env"
    shutil.copyfile(ENV_EXAMPLE, path)
    return path


@pytest.fixture
def config(env_file: Path) -> dict:
    done = compose(env_file, "config")
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_compose_file_validates(env_file: Path):
    done = compose(env_file, "config", "-q")
    assert done.returncode == 0, done.stderr


def test_a_missing_secret_is_named(env_file: Path):
    env_file.write_text(re.sub(r"(?m)^DAGSTER_PG_PASSWORD=.*$", "", env_file.read_text()))
    done = compose(env_file, "config", "-q")
    assert done.returncode != 0
    assert "set DAGSTER_PG_PASSWORD in .env" in done.stderr


def test_env_example_holds_no_real_secret():
    values = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
                  if line and not line.startswith("#"))
    for key in ("APP_DB_PASSWORD", "DAGSTER_PG_PASSWORD", "ADMIN_API_TOKEN",
                "AWS_SECRET_ACCESS_KEY", "MINIO_ROOT_PASSWORD", "OFFSITE_AGE_RECIPIENTS"):
        assert values[key].startswith("change-me"), key


def test_services_are_health_checked_and_restarted(config: dict):
    services = config["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        if name in ONE_SHOT:  # others wait for it to complete
            assert service["restart"] == "no"
            continue
        assert service["restart"] == "unless-stopped", name
        assert service["healthcheck"]["test"], name


def test_one_image_runs_our_processes(config: dict):
    services = config["services"]
    images = {services[name]["image"] for name in OUR_SERVICES}
    assert len(images) == 1
    for name in OUR_SERVICES:
        assert services[name]["build"]["dockerfile"] == "docker/Dockerfile"
    assert services["code-server"]["command"] == [
        "dagster", "api", "grpc", "-m", "backup_pipeline.definitions", "-h", "0.0.0.0",
        "-p", "4000"]
    assert services["admin-api"]["command"] == [
        "backup-pipeline", "api", "--host", "0.0.0.0", "--port", "8080"]
    assert services["dagster-daemon"]["deploy"]["replicas"] == 1
    assert services["code-server"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully")


def test_webserver_is_published_on_localhost_only(config: dict):
    for name, service in config["services"].items():
        for port in service.get("ports", []):
            host_ip = port["host_ip"] if isinstance(port, dict) else port.split(":")[0]
            assert host_ip == "127.0.0.1", name
    assert config["services"]["dagster-webserver"]["ports"]


def test_runs_see_documents_backups_and_both_databases(config: dict):
    code = config["services"]["code-server"]
    mounts = {v["target"] if isinstance(v, dict) else v.split(":")[1]: v for v in code["volumes"]}
    assert {"/app/data/documents", "/app/data/backups"} <= set(mounts)
    env = code["environment"]
    assert env["DOCUMENTS_DIR"] == "/app/data/documents"
    assert env["BACKUP_DIR"] == "/app/data/backups"
    assert env["DATABASE_URL"].startswith("postgresql://motovaultpro:change-me")
    assert env["DAGSTER_PG_HOST"] == "dagster-postgres"
    assert {"documents", "backups", "app_pgdata", "dagster_pgdata"} <= set(config["volumes"])
    for name in ("dagster-webserver", "dagster-daemon"):  # they reach our code through gRPC
        env = config["services"][name]["environment"]
        assert "DATABASE_URL" not in env, name
        assert env["DAGSTER_PG_HOST"] == "dagster-postgres", name


def test_dockerfile_copies_only_what_the_context_has():
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim-bookworm$", text, re.M)
    assert "postgresql-client-15" in text
    ignored = {line for line in (REPO / ".dockerignore").read_text().splitlines()
               if line and not line.startswith("#")}
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        sources = [word for word in line.split() if not word.startswith("--")][:-1]
        for source in sources:
            assert (REPO / source).exists(), source
            assert source.split("/")[0] not in ignored, source


def test_offsite_copies_go_to_minio_by_default(config: dict):
    services = config["services"]
    setup = services["minio-setup"]
    assert services["minio"]["image"].startswith("minio/minio:")
    assert setup["depends_on"]["minio"]["condition"] == "service_healthy"
    script = " ".join(setup["command"])
    assert "mc mb --ignore-existing --with-lock" in script
    for name in ("code-server", "admin-api"):  # where copies are made, deleted, pushed
        env = services[name]["environment"]
        assert env["OFFSITE_URL"] == "s3://motovaultpro-backups/offsite", name
        assert env["S3_ENDPOINT_URL"] == "http://minio:9000", name
        assert env["AWS_SECRET_ACCESS_KEY"].startswith("change-me"), name
        assert env["OFFSITE_AGE_RECIPIENTS"], name
        assert "AGE_IDENTITY_FILE" not in env, name  # the server cannot read copies back
    assert services["code-server"]["depends_on"]["minio-setup"]["condition"] == (
        "service_completed_successfully")
    assert "minio_data" in config["volumes"]


def test_a_missing_offsite_secret_is_named(env_file: Path):
    env_file.write_text(re.sub(r"(?m)^AWS_SECRET_ACCESS_KEY=.*$", "", env_file.read_text()))
    done = compose(env_file, "config", "-q")
    assert done.returncode != 0
    assert "set AWS_SECRET_ACCESS_KEY in .env" in done.stderr
