"""Outgoing mail for the notification sensors: SMTP_HOST, SMTP_PORT, SMTP_USERNAME,
SMTP_PASSWORD, SMTP_SECURITY (none, starttls, ssl; default starttls), EMAIL_FROM.

With SMTP_HOST unset no mail is sent. An unset field falls back to the environment when used,
so the code server's environment decides; the password is bound with `dg.EnvVar` when set, so
the UI shows only the variable's name.
"""

import os

import dagster as dg
from pydantic import Field

from backup_pipeline.notifications.mailer import SmtpConfig
from backup_pipeline.notifications.outbox import Policy

ENV = {
    "host": "SMTP_HOST", "port": "SMTP_PORT", "username": "SMTP_USERNAME",
    "password": "SMTP_PASSWORD", "security": "SMTP_SECURITY", "email_from": "EMAIL_FROM",
}


class SmtpResource(dg.ConfigurableResource):
    """Where and how notification mails are sent, and how often a failed one is retried."""

    host: str | None = Field(default=None, description="SMTP server; unset: SMTP_HOST.")
    port: int | None = Field(default=None, description="Unset: SMTP_PORT, else 25/587/465.")
    username: str | None = Field(default=None, description="Login user; unset: SMTP_USERNAME.")
    password: str | None = Field(default=None, description="Use dg.EnvVar('SMTP_PASSWORD').")
    security: str | None = Field(default=None, description="none, starttls or ssl.")
    email_from: str | None = Field(default=None, description="Sender; unset: EMAIL_FROM.")
    retry_first_seconds: float = Field(default=60, description="Delay after a failed send.")
    retry_max_seconds: float = Field(default=3600, description="Longest delay between tries.")
    max_attempts: int = Field(default=30, description="Tries before a mail is given up.")

    def _value(self, name: str) -> str | None:
        value = getattr(self, name)
        if value is None or value == "":
            value = os.environ.get(ENV[name], "")
        value = str(value)
        return value if value.strip() else None

    def config(self) -> SmtpConfig | None:
        """The SMTP settings, or None when SMTP_HOST is unset (no mail). Invalid settings
        raise ConfigError with one line naming the variable."""
        host = self._value("host")
        if host is None:
            return None
        return SmtpConfig.build(host=host, port=self._value("port"),
                                security=self._value("security"),
                                sender=self._value("email_from"),
                                username=self._value("username"),
                                password=self._value("password"))

    def policy(self) -> Policy:
        return Policy(first_retry_seconds=self.retry_first_seconds,
                      max_retry_seconds=self.retry_max_seconds, max_attempts=self.max_attempts)


def smtp_resource_from_env() -> SmtpResource:
    """The resource for definitions.py: the password through dg.EnvVar when it is set."""
    if os.environ.get("SMTP_PASSWORD"):
        return SmtpResource(password=dg.EnvVar("SMTP_PASSWORD"))
    return SmtpResource()
