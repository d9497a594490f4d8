"""age encryption with pyrage, streamed: no second copy on disk, memory bounded.

pyrage's `encrypt_io` pushes ciphertext into a writer while boto3 pulls an upload from a
reader, so the two meet in an OS pipe: a thread encrypts the archive into the pipe's write end
and `EncryptingReader` is the read end, hashing what passes. The pipe holds 1 MiB, so memory
stays the same whatever the archive's size. The age format itself is pyrage's (the Rust `age`
crate), which the age CLI reads and writes too.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import threading
from contextlib import suppress
from pathlib import Path

import pyrage
from pyrage import x25519

from backup_pipeline.archive.writer import create_private
from backup_pipeline.errors import ConfigError
from backup_pipeline.offsite.config import OffsiteError

AGE_MAGIC = b"age-encryption.org/v1\n"
READ_CHUNK = 1024 * 1024
PIPE_SIZE = 1024 * 1024


def recipients(keys: tuple[str, ...]) -> list[x25519.Recipient]:
    out = []
    for key in keys:
        try:
            out.append(x25519.Recipient.from_str(key))
        except pyrage.RecipientError:
            raise ConfigError(f"OFFSITE_AGE_RECIPIENTS: {key[:20]}... is not a valid age "
                              "public key") from None
    return out


def identities(path: Path | None) -> list[x25519.Identity]:
    """The private keys of an age identity file (age-keygen's format: comments and
    AGE-SECRET-KEY-1... lines)."""
    if path is None:
        raise ConfigError("AGE_IDENTITY_FILE is not set: pulling an encrypted copy needs the "
                          "age private key file")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read AGE_IDENTITY_FILE {path}: {exc.strerror}") from None
    found = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            found.append(x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise ConfigError(f"AGE_IDENTITY_FILE {path} holds a line that is not an age "
                              "private key (AGE-SECRET-KEY-1...)") from None
    if not found:
        raise ConfigError(f"AGE_IDENTITY_FILE {path} holds no age private key")
    return found


class _HashingReader(io.RawIOBase):
    """The archive as pyrage reads it (8 KiB a call), hashed on the way."""

    def __init__(self, handle, expected_sha256: str | None):
        self._handle = handle
        self._expected = expected_sha256
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._account(data, len(data))
        return data

    def readinto(self, buffer) -> int:
        n = self._handle.readinto(buffer) or 0
        self._account(memoryview(buffer)[:n], n)
        return n

    def _account(self, data, n: int) -> None:
        if n:
            self.sha256.update(data)
            self.bytes += n
        elif self._expected and self.sha256.hexdigest() != self._expected:
            raise OffsiteError("the archive does not match the sha256 recorded in the catalog "
                               "(changed on disk?); not copied")


class EncryptingReader(io.RawIOBase):
    """A non-seekable reader of the age ciphertext of `path` (or of its plain bytes when there
    are no recipients), for boto3's upload_fileobj. Its `read` raises at the end if encryption
    failed or the archive is not the one the catalog knows (`expected_sha256`), so a broken
    stream aborts the upload instead of completing a wrong object."""

    def __init__(self, path: Path, keys: tuple[str, ...], expected_sha256: str | None = None):
        self._source = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._plain = _HashingReader(self._source, expected_sha256)
        self.object_sha256 = hashlib.sha256()
        self.object_bytes = 0
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if keys:
            read_fd, write_fd = os.pipe()
            with suppress(OSError):  # fewer, larger hand-overs between the threads (Linux)
                fcntl.fcntl(write_fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_SIZE)
            self._pipe = io.FileIO(read_fd, "rb")
            self._thread = threading.Thread(target=self._encrypt, name="age-encrypt",
                                            args=(io.FileIO(write_fd, "wb"), recipients(keys)),
                                            daemon=True)
            self._thread.start()
        else:
            self._pipe = None

    def _encrypt(self, sink, to) -> None:
        try:
            with sink:
                pyrage.encrypt_io(self._plain, sink, to)
        except BaseException as exc:  # noqa: BLE001 - raised to the reader at the end
            self._error = exc

    @property
    def archive_sha256(self) -> str:
        return self._plain.sha256.hexdigest()

    @property
    def archive_bytes(self) -> int:
        return self._plain.bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._pipe is None:
            n = self._plain.readinto(buffer)
        else:
            n = self._pipe.readinto(buffer) or 0
            if n == 0 and self._thread is not None:
                self._thread.join()
                if isinstance(self._error, OffsiteError):
                    raise self._error
                if self._error is not None:
                    raise OffsiteError(f"encryption failed: {self._error}")
        if n:
            self.object_sha256.update(memoryview(buffer)[:n])
            self.object_bytes += n
        return n

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes, fewer only at the end: boto3 reads each part in one call."""
        if size is None or size < 0:
            size = READ_CHUNK
        buffer = bytearray(size)
        with memoryview(buffer) as view:
            filled = 0
            while filled < size:
                n = self.readinto(view[filled:])
                if not n:
                    break
                filled += n
        del buffer[filled:]
        return bytes(buffer)

    def close(self) -> None:
        if self._pipe is not None:
            self._pipe.close()  # an encryption thread still writing gets EPIPE and ends
        if self._thread is not None:
            self._thread.join()
        self._source.close()
        super().close()


def is_age(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(len(AGE_MAGIC)) == AGE_MAGIC


def decrypt_file(source: Path, target: Path, identity_file: Path | None) -> None:
    """Decrypt `source` into a new 0600 file `target`; a one-line error when no identity
    matches (nothing is left at `target` then)."""
    keys = identities(identity_file)
    try:
        with create_private(target):
            pass  # pyrage truncates and writes the file; created here to be 0600 from the start
        pyrage.decrypt_file(str(source), str(target), keys)
    except pyrage.DecryptError as exc:
        target.unlink(missing_ok=True)
        reason = str(exc)
        if "no matching keys" in reason.lower():
            raise OffsiteError(f"the age identity in {identity_file} is not one this copy was "
                               "encrypted to (wrong key): nothing was imported") from None
        raise OffsiteError(f"cannot decrypt the copy: {reason}") from None
    except BaseException:
        target.unlink(missing_ok=True)
        raise
