"""`offsite pull KEY`: a copy from the bucket back into the catalog, checked like an upload.

The object is streamed to a 0600 file in BACKUP_DIR/.offsite, decrypted by pyrage file to
file (the Rust age crate streams it), then handed to the importer, which moves it into place
after the complete check of an untrusted archive. Nothing stays behind on failure.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from backup_pipeline.backup.service import ensure_private_dir
from backup_pipeline.errors import NotFoundError
from backup_pipeline.offsite import crypto, storage
from backup_pipeline.offsite.config import OffsiteConfig, OffsiteError
from backup_pipeline.restore.importer import import_archive
from backup_pipeline.settings import Settings

PULL_STAGING = ".offsite"


def pull(settings: Settings, config: OffsiteConfig, client, key: str) -> dict[str, Any]:
    """Download, decrypt, verify and import one copy as an untrusted archive (type
    `uploaded`); returns the new backup's record. Temp files are 0600 in BACKUP_DIR/.offsite
    and removed whatever happens; a wrong key imports nothing."""
    try:
        head = client.head_object(Bucket=config.bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            raise NotFoundError(f"no object {key!r} in {config.url}") from None
        raise OffsiteError(f"cannot read {key}: {storage.describe_error(exc)}") from None
    except storage.STORAGE_ERRORS as exc:
        raise OffsiteError(f"cannot read {key}: {storage.describe_error(exc)}") from None
    ensure_private_dir(settings.backup_dir)
    ensure_private_dir(settings.backup_dir / PULL_STAGING)
    staging = Path(tempfile.mkdtemp(dir=settings.backup_dir / PULL_STAGING))
    try:
        fetched = staging / "copy"
        try:
            storage.download(client, config.bucket, key, fetched)
        except storage.STORAGE_ERRORS as exc:
            raise OffsiteError(f"cannot download {key}: {storage.describe_error(exc)}") from None
        archive = fetched
        if crypto.is_age(fetched):
            archive = staging / "archive.tar.gz"
            crypto.decrypt_file(fetched, archive, config.identity_file)
            fetched.unlink()
        record = import_archive(settings, archive, take=True, trigger="offsite",
                                note=f"pulled from s3://{config.bucket}/{key}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    expected = (head.get("Metadata") or {}).get(storage.META_ARCHIVE_SHA256)
    record["offsite_key"] = key
    record["matches_object_metadata"] = (expected == record.get("sha256")) if expected else None
    return record
