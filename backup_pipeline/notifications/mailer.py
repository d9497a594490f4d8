"""Sending mail over SMTP: plain (`none`), `starttls` or implicit TLS (`ssl`); login only when
a user name is set, and never in clear text.

A message is sent in two halves so the outbox can tell "not sent" from "maybe sent": the
envelope (MAIL FROM, RCPT TO) first, then `on_handover()`, then DATA. An error before DATA
means the server has not got the message; only a crash during DATA leaves the outcome unknown.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Literal

from backup_pipeline.errors import BackupPipelineError, ConfigError
from backup_pipeline.notifications.settings import validate_address
from backup_pipeline.postgres import one_line

Security = Literal["none", "starttls", "ssl"]
SECURITY_MODES: tuple[str, ...] = ("none", "starttls", "ssl")
DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}


class MailError(BackupPipelineError):
    """A message was not accepted. `permanent`: the server refused it for good (5xx)."""

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: Security
    sender: str
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0

    def __post_init__(self):
        if self.security not in SECURITY_MODES:
            raise ConfigError(f"SMTP_SECURITY must be one of {', '.join(SECURITY_MODES)}, "
                              f"not {self.security!r}")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"SMTP_PORT must be between 1 and 65535, not {self.port}")
        if self.username and self.security == "none":
            raise ConfigError("SMTP_USERNAME is set but SMTP_SECURITY is none, which would send "
                              "the password in clear text: use starttls or ssl")
        try:
            validate_address(self.envelope_sender)
        except ConfigError as exc:
            raise ConfigError(f"EMAIL_FROM: {exc}") from None

    @property
    def envelope_sender(self) -> str:
        """The address in EMAIL_FROM, which may be `Backups <backups@example.com>`."""
        name, address = parseaddr(self.sender)
        return address if address and (name or "<" in self.sender) else self.sender.strip()

    @classmethod
    def build(cls, *, host: str, port: int | str | None, security: str | None, sender: str | None,
              username: str | None = None, password: str | None = None) -> SmtpConfig:
        """From the SMTP_* values as given (text or empty); defaults: starttls, its usual port."""
        mode = (security or "starttls").strip().lower()
        if mode not in SECURITY_MODES:
            raise ConfigError(f"SMTP_SECURITY must be one of {', '.join(SECURITY_MODES)}, "
                              f"not {security!r}")
        text = str(port).strip() if port is not None else ""
        try:
            number = int(text) if text else DEFAULT_PORTS[mode]
        except ValueError:
            raise ConfigError(f"SMTP_PORT must be a number, not {port!r}") from None
        if not sender or not sender.strip():
            raise ConfigError("EMAIL_FROM is not set (the sender address of notification mails)")
        return cls(host=host.strip(), port=number, security=mode, sender=sender.strip(),
                   username=(username or "").strip() or None, password=password or None)

    def describe(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"smtp://{user}{self.host}:{self.port} ({self.security})"


def _describe(exc: BaseException, config: SmtpConfig) -> str:
    where = f"{config.host}:{config.port}"
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return f"SMTP login as {config.username} refused by {where}: {exc.smtp_code} " \
               f"{_text(exc.smtp_error)}"
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return f"SMTP server {where}: {one_line(exc)}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"SMTP server {where} answered {exc.smtp_code} {_text(exc.smtp_error)}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(exc.recipients.values()))
        return f"SMTP server {where} refused the recipient: {code} {_text(text)}"
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return f"TLS with SMTP server {where} failed: {one_line(exc)}"
    if isinstance(exc, socket.timeout | TimeoutError):
        return f"SMTP server {where} timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot reach SMTP server {where}: {exc.strerror}"
    return f"SMTP with {where} failed: {type(exc).__name__}: {one_line(exc)}"


def _text(value: bytes | str) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return " ".join(text.split())


def _permanent(exc: BaseException) -> bool:
    return isinstance(exc, smtplib.SMTPResponseException) and 500 <= exc.smtp_code < 600 \
        and not isinstance(exc, smtplib.SMTPAuthenticationError)


class SmtpSession:
    """One connection, several messages. Errors come out as one-line MailErrors."""

    def __init__(self, config: SmtpConfig, ssl_context: ssl.SSLContext | None = None):
        self.config = config
        self.ssl_context = ssl_context
        self._smtp: smtplib.SMTP | None = None

    def __enter__(self) -> SmtpSession:
        return self.open()

    def open(self) -> SmtpSession:
        """Connect, secure the connection as configured, and log in when a user is set."""
        config = self.config
        context = self.ssl_context or ssl.create_default_context()
        try:
            if config.security == "ssl":
                smtp = smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout,
                                        context=context)
            else:
                smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
            self._smtp = smtp
            smtp.ehlo()
            if config.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise MailError(f"SMTP server {config.host}:{config.port} does not offer "
                                    "STARTTLS (set SMTP_SECURITY to ssl or none)")
                smtp.starttls(context=context)
                smtp.ehlo()
            if config.username:
                smtp.login(config.username, config.password or "")
        except MailError:
            self.close()
            raise
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise MailError(_describe(exc, config)) from None
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()

    def send(self, message: EmailMessage, on_handover: Callable[[], bool] | None = None) -> bool:
        """Send one message to its single `To` address. `on_handover()` runs after the server
        accepted the envelope and before DATA; if it returns False the message is not sent
        (False is returned). Raises MailError when the server does not accept the message."""
        smtp = self._smtp
        if smtp is None:
            raise MailError(f"the connection to SMTP server {self.config.host}:"
                            f"{self.config.port} was lost")
        recipient = str(message["To"])
        # SMTP wants CRLF; headers fold only past 998 characters (RFC 5322), as the folding at 78
        # puts a subject like ours on a continuation line, which some readers show indented
        data = message.as_bytes(policy=message.policy.clone(linesep="\r\n", max_line_length=998))
        try:
            sender = self.config.envelope_sender
            code, reply = smtp.mail(sender)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, reply, sender)
            code, reply = smtp.rcpt(recipient)
            if code not in (250, 251):
                raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})
            if on_handover is not None and not on_handover():
                smtp.rset()
                return False
            code, reply = smtp.data(data)
            if code != 250:
                raise smtplib.SMTPDataError(code, reply)
        except (smtplib.SMTPException, OSError) as exc:
            permanent = _permanent(exc) or (
                isinstance(exc, smtplib.SMTPRecipientsRefused)
                and all(500 <= c < 600 for c, _ in exc.recipients.values()))
            self._reset()
            raise MailError(_describe(exc, self.config), permanent=permanent) from None
        return True

    def _reset(self) -> None:
        """After a failed transaction: RSET, or drop a connection that is no longer usable."""
        if self._smtp is None:
            return
        try:
            self._smtp.rset()
        except (smtplib.SMTPException, OSError):
            smtp, self._smtp = self._smtp, None
            smtp.close()

    @property
    def connected(self) -> bool:
        return self._smtp is not None
