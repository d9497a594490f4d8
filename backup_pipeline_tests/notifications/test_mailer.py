"""SMTP sending against a real server: none, starttls, ssl; login only when a user is set."""

import ssl

import pytest

from backup_pipeline.errors import ConfigError
from backup_pipeline.notifications.mailer import MailError, SmtpConfig, SmtpSession
from backup_pipeline.notifications.render import build_message
from backup_pipeline.resources.smtp import SmtpResource
from backup_pipeline_tests.notifications.conftest import (
    SENDER,
    SmtpServer,
    free_port,
    server_tls_context,
)


def message(to: str = "ops@example.com", sender: str = f"Backups <{SENDER}>"):
    return build_message(sender=sender, recipient=to, subject="Backup FAILED (app): disk full",
                         body="Error:  disk full \u2013 caf\u00e9\n", dedupe_key="r:k:" + to)


def send(config: SmtpConfig, context: ssl.SSLContext | None = None) -> None:
    with SmtpSession(config, context) as session:
        assert session.send(message())


@pytest.fixture
def tls(tls_cert):
    cert, key = tls_cert
    return server_tls_context(cert, key), ssl.create_default_context(cafile=str(cert))


def test_plain_without_user_does_not_log_in(smtp_server):
    send(SmtpConfig(host="127.0.0.1", port=smtp_server.port, security="none",
                    sender=f"Backups <{SENDER}>"))
    [mail] = smtp_server.received
    assert smtp_server.recorder.logins == []
    assert mail.mail_from == SENDER and mail.message["From"] == f"Backups <{SENDER}>"
    assert mail.message["Subject"] == "Backup FAILED (app): disk full"
    assert mail.body == "Error:  disk full \u2013 caf\u00e9\n"


def test_starttls_with_login(tls):
    server_context, client_context = tls
    server = SmtpServer(free_port(), tls_context=server_context, require_starttls=True,
                        auth_required=True, auth_require_tls=True).start()
    try:
        send(SmtpConfig(host="127.0.0.1", port=server.port, security="starttls", sender=SENDER,
                        username="mailer", password="s3cret"), client_context)
        assert server.recorder.logins == [("mailer", "s3cret")]
        assert len(server.received) == 1

        with pytest.raises(MailError) as refused:
            send(SmtpConfig(host="127.0.0.1", port=server.port, security="starttls",
                            sender=SENDER, username="mailer", password="wrong"), client_context)
        assert str(refused.value).startswith(
            f"SMTP login as mailer refused by 127.0.0.1:{server.port}: 535")
        assert "wrong" not in str(refused.value)
    finally:
        server.stop()


def test_starttls_is_required_when_asked_for(smtp_server):
    with pytest.raises(MailError, match="does not offer STARTTLS"):
        send(SmtpConfig(host="127.0.0.1", port=smtp_server.port, security="starttls",
                        sender=SENDER))


def test_ssl_without_user_does_not_log_in(tls):
    server_context, client_context = tls
    server = SmtpServer(free_port(), ssl_context=server_context).start()
    try:
        send(SmtpConfig(host="127.0.0.1", port=server.port, security="ssl", sender=SENDER),
             client_context)
        assert len(server.received) == 1 and server.recorder.logins == []
        # a certificate the client does not trust is refused, in one line
        with pytest.raises(MailError, match="^TLS with SMTP server .* failed: .*CERTIFICATE"):
            send(SmtpConfig(host="127.0.0.1", port=server.port, security="ssl", sender=SENDER))
    finally:
        server.stop()


def test_resource_reads_the_environment(monkeypatch):
    for key in ("SMTP_HOST", "SMTP_PORT", "SMTP_USERNAME", "SMTP_PASSWORD", "SMTP_SECURITY",
                "EMAIL_FROM"):
        monkeypatch.delenv(key, raising=False)
    assert SmtpResource().config() is None  # SMTP_HOST unset: no mail

    monkeypatch.setenv("SMTP_HOST", "mail.example.com")
    monkeypatch.setenv("EMAIL_FROM", SENDER)
    config = SmtpResource().config()
    assert (config.port, config.security, config.username) == (587, "starttls", None)
    monkeypatch.setenv("SMTP_SECURITY", "ssl")
    monkeypatch.setenv("SMTP_USERNAME", "mailer")
    monkeypatch.setenv("SMTP_PASSWORD", "s3cret")
    config = SmtpResource().config()
    assert (config.port, config.username, config.password) == (465, "mailer", "s3cret")
    assert "s3cret" not in config.describe()


@pytest.mark.parametrize(("env", "message"), [
    ({"SMTP_SECURITY": "tls"}, "SMTP_SECURITY must be one of none, starttls, ssl"),
    ({"SMTP_PORT": "smtp"}, "SMTP_PORT must be a number"),
    ({"SMTP_PORT": "70000"}, "SMTP_PORT must be between 1 and 65535"),
    ({"EMAIL_FROM": ""}, "EMAIL_FROM is not set"),
    ({"EMAIL_FROM": "backups"}, "EMAIL_FROM: 'backups' is not a valid email address"),
    ({"EMAIL_FROM": "Backups <backups@>"}, "EMAIL_FROM: 'Backups <backups@>' is not a valid"),
    ({"SMTP_SECURITY": "none", "SMTP_USERNAME": "mailer"}, "would send the password in clear"),
])
def test_bad_smtp_settings_are_one_clear_line(monkeypatch, env, message):
    monkeypatch.delenv("SMTP_USERNAME", raising=False)
    for key, value in {"SMTP_HOST": "mail.example.com", "EMAIL_FROM": SENDER, **env}.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as error:
        SmtpResource().config()
    assert message in str(error.value) and "\n" not in str(error.value)
