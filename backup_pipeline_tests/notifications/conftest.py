"""A real SMTP server (aiosmtpd) for the notification tests, and helpers to drive the sensors
over real runs on the test's Dagster instance."""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from psycopg.rows import dict_row

from backup_pipeline.catalog.migrate import migrate
from backup_pipeline.cli import dagster_run
from backup_pipeline.notifications import settings as notification_settings
from backup_pipeline.resources.database import DatabaseResource
from backup_pipeline.resources.smtp import SmtpResource
from backup_pipeline_tests.conftest import AppEnv, make_dagster_home, make_documents
from backup_pipeline_tests.notifications.http_receiver import HttpReceiver

SENDER = "backups@example.com"
WEBSERVER = "http://dagster.example:3000"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def body(self) -> str:
        return self.message.get_content().replace("\r\n", "\n")

    @property
    def fields(self) -> dict[str, str]:
        """The body's `Name:  value` lines."""
        out = {}
        for line in self.body.splitlines():
            name, sep, value = line.partition(":")
            if sep and value.startswith(" "):
                out[name] = value.strip()
        return out


class Recorder:
    """aiosmtpd handler: keeps every accepted message; refuses recipients in `refuse`."""

    def __init__(self):
        self.received: list[Received] = []
        self.refuse: set[str] = set()
        self.logins: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content or envelope.content,
                                           policy=email.policy.default)
        with self._lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 2.0.0 queued"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((user, password))
        # handled=False: aiosmtpd sends the 235 or 535 reply itself
        return AuthResult(success=(user, password) == ("mailer", "s3cret"), handled=False)

    def to(self, recipient: str) -> list[Received]:
        return [r for r in self.received if recipient in r.rcpt_tos]


class SmtpServer:
    """aiosmtpd on 127.0.0.1:port; can be stopped and started again on the same port."""

    def __init__(self, port: int, **smtp_kwargs):
        self.port = port
        self.recorder = Recorder()
        self.smtp_kwargs = smtp_kwargs
        self._controller: Controller | None = None

    def start(self) -> SmtpServer:
        kwargs = {"authenticator": self.recorder.authenticate, "auth_require_tls": False,
                  **self.smtp_kwargs}
        self._controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port,
                                      **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def received(self) -> list[Received]:
        return self.recorder.received


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver(free_port()).start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert, key)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


RECIPIENTS = ("ops@example.com", "oncall@example.org")


def resources(database_url: str, **smtp) -> dict:
    return {"database": DatabaseResource(url=database_url), "smtp": SmtpResource(**smtp)}


def run_job(instance: dg.DagsterInstance, job_name: str, run_config: dict | None = None,
            job: dg.JobDefinition | None = None, tags: dict | None = None
            ) -> dg.ExecuteInProcessResult:
    """A job executed in process, as the CLI does (no code location origin)."""
    from backup_pipeline.definitions import defs

    job = job or defs.get_job_def(job_name)
    return job.execute_in_process(run_config={**dagster_run.QUIET_LOGGERS, **(run_config or {})},
                                  instance=instance, tags=tags or {}, raise_on_error=False)


def break_documents(documents_dir: Path) -> None:
    """A document name that is not UTF-8 fails collect_documents (a real backup failure)."""
    folder = os.fsencode(documents_dir / "1001")
    with open(os.path.join(folder, b"bad-\xff.txt"), "wb") as f:
        f.write(b"x")


@dataclass
class Notify:
    """One test's world: app_env, an in-memory Dagster instance, the SMTP server."""

    app: AppEnv
    instance: dg.DagsterInstance
    smtp: SmtpServer

    @property
    def url(self) -> str:
        return self.app.database_url

    def backup(self, **config) -> dg.ExecuteInProcessResult:
        """backup_job with the CLI's config and tags."""
        config = {"backup_type": "manual", "trigger": "cli", **config}
        return run_job(self.instance, "backup_job",
                       {"ops": {"start_backup": {"config": config}}},
                       tags={"backup_pipeline/trigger": config["trigger"]})

    def failing_backup(self) -> dg.ExecuteInProcessResult:
        break_documents(self.app.documents_dir)
        result = self.backup()
        assert not result.success
        return result

    def evaluate(self, sensor, result: dg.ExecuteInProcessResult, **smtp):
        """Run a run-status sensor over a finished run, as the daemon would."""
        event = result.get_run_success_event() if result.success else \
            result.get_run_failure_event()
        context = dg.build_run_status_sensor_context(
            sensor_name=sensor.name, dagster_event=event, dagster_instance=self.instance,
            dagster_run=self.instance.get_run_by_id(result.run_id),
            resources=resources(self.url, **smtp),
        )
        return sensor(context)

    def outbox_tick(self, **smtp):
        """One tick of email_outbox_sensor."""
        from backup_pipeline.sensors import email_outbox_sensor

        context = dg.build_sensor_context(instance=self.instance,
                                          resources=resources(self.url, **smtp))
        return email_outbox_sensor(context)

    def set(self, **changes) -> None:
        notification_settings.update(self.url, changes)

    def rows(self) -> list[dict]:
        return self._select("SELECT * FROM backup.email_outbox ORDER BY id")

    def decisions(self) -> list[dict]:
        return self._select("SELECT * FROM backup.run_notifications ORDER BY decided_at")

    def _select(self, sql: str) -> list[dict]:
        with psycopg.connect(self.url) as conn:
            return conn.cursor(row_factory=dict_row).execute(sql).fetchall()

    def recipients_mailed(self) -> list[str]:
        return sorted(r for m in self.smtp.received for r in m.rcpt_tos)


@pytest.fixture(scope="session")
def mail_catalog_db(databases) -> str:
    """One small database (just the catalog) shared by the notification tests: each test
    empties its tables first, which is much cheaper than a database per test."""
    url = databases.create()
    migrate(url)
    return url


@pytest.fixture
def catalog_url(mail_catalog_db: str) -> str:
    """The shared catalog database, emptied for this test."""
    with psycopg.connect(mail_catalog_db, autocommit=True) as conn:
        conn.execute("TRUNCATE backup.email_outbox, backup.run_notifications,"
                     " backup.freshness_breaches,"
                     " backup.backup_settings, backup.restore_runs, backup.backup_history,"
                     " backup.backup_schedules CASCADE")
    return mail_catalog_db


@pytest.fixture
def notify(catalog_url: str, tmp_path: Path, smtp_server: SmtpServer,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Notify]:
    """A small application (catalog database, sample documents, backup dir), SMTP_* pointing
    at the test server, a webserver URL, two recipients, and an in-memory Dagster instance
    (real runs, without SQLite's fsync per event)."""
    app = AppEnv(database_url=catalog_url, documents_dir=make_documents(tmp_path / "documents"),
                 backup_dir=tmp_path / "backups",
                 dagster_home=make_dagster_home(tmp_path / "dagster_home"))
    env = {**app.environ(), "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_server.port),
           "SMTP_SECURITY": "none", "EMAIL_FROM": SENDER, "DAGSTER_WEBSERVER_URL": WEBSERVER}
    for key, value in env.items():
        if os.environ.get(key) != value:
            monkeypatch.setenv(key, value)
    for key in ("SMTP_USERNAME", "SMTP_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
    notification_settings.update(catalog_url, {"email_recipients": ",".join(RECIPIENTS)})
    with dg.DagsterInstance.ephemeral() as instance:
        yield Notify(app, instance, smtp_server)
