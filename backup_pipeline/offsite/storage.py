"""The bucket: streamed multipart uploads, downloads, listing and deletion, all through boto3.

boto3's managed transfer does the multipart work and its retries. An upload from a stream
buffers at most `UPLOAD_PARTS_IN_MEMORY` parts of `PART_SIZE` (8 MiB up to a 70 GiB archive),
so a 2 GB archive needs no more memory than a small one. Every object carries metadata naming
its backup, so the bucket can be read without the catalog.

boto3 itself is imported when a client or a transfer is made (about 50 ms that every backup
paid, copies on or off); its exceptions come from botocore, which is cheap to import.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from backup_pipeline.archive.writer import create_private
from backup_pipeline.offsite.config import OffsiteConfig, OffsiteError
from backup_pipeline.offsite.crypto import EncryptingReader
from backup_pipeline.settings import ARCHIVE_PREFIX

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config

PART_SIZE = 8 * 1024 * 1024
MAX_PARTS = 9000  # S3 allows 10,000 parts; larger archives get larger parts
CONCURRENCY = 4
UPLOAD_PARTS_IN_MEMORY = 3
META_BACKUP_ID = "backup-id"
META_TYPE = "backup-type"
META_CREATED = "backup-created-at"
META_ARCHIVE_SHA256 = "archive-sha256"
META_ENCRYPTION = "encryption"


def client_config() -> Config:
    from botocore.config import Config

    return Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10,
                  read_timeout=120)


def make_client(config: OffsiteConfig):
    """A boto3 S3 client for the target; credentials from boto3's usual chain."""
    import boto3

    return boto3.session.Session().client("s3", endpoint_url=config.endpoint_url,
                                          region_name=config.region, config=client_config())


def transfer_config(size: int = 0) -> TransferConfig:
    """Parts of PART_SIZE (more for archives over MAX_PARTS of them), of which at most
    UPLOAD_PARTS_IN_MEMORY are held at once."""
    from boto3.s3.transfer import TransferConfig

    part = max(PART_SIZE, -(-size // MAX_PARTS))
    transfer = TransferConfig(multipart_threshold=part, multipart_chunksize=part,
                              max_concurrency=CONCURRENCY)
    transfer.max_in_memory_upload_chunks = UPLOAD_PARTS_IN_MEMORY  # s3transfer's bound
    transfer.max_in_memory_download_chunks = UPLOAD_PARTS_IN_MEMORY
    return transfer


def describe_error(exc: BaseException) -> str:
    """One line for an S3 failure, never with credentials (boto3 does not put them in)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message') or exc}"
    return " ".join(str(exc).split()) or type(exc).__name__


STORAGE_ERRORS = (BotoCoreError, ClientError, OffsiteError, OSError)


@dataclass(frozen=True)
class Uploaded:
    key: str
    version_id: str | None
    bytes: int
    object_sha256: str
    archive_sha256: str
    archive_bytes: int
    retain_until: datetime | None


def upload(client, config: OffsiteConfig, path: Path, key: str, row: dict[str, Any],
           now: datetime | None = None) -> Uploaded:
    """Encrypt `path` on the fly into `key`. The archive's sha256 must be the catalog's: a
    file changed on disk fails the last read, which aborts the upload (nothing is stored)."""
    metadata = {META_BACKUP_ID: row["id"], META_TYPE: row["backup_type"],
                META_CREATED: str(row.get("completed_at") or row.get("started_at")),
                META_ARCHIVE_SHA256: row.get("sha256") or "",
                META_ENCRYPTION: "age" if config.encrypted else "none"}
    extra: dict[str, Any] = {"Metadata": metadata,
                             "ContentType": "application/octet-stream"}
    retain_until = None
    if config.lock_period():
        retain_until = (now or datetime.now(UTC)) + config.lock_period()
        extra.update(ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=retain_until)
    reader = EncryptingReader(path, config.recipients, row.get("sha256"))
    with reader:
        client.upload_fileobj(reader, config.bucket, key, ExtraArgs=extra,
                              Config=transfer_config(path.stat().st_size))
    head = client.head_object(Bucket=config.bucket, Key=key)
    if head["ContentLength"] != reader.object_bytes:
        raise OffsiteError(f"the bucket holds {head['ContentLength']} bytes for {key}, "
                           f"{reader.object_bytes} were sent")
    return Uploaded(key=key, version_id=head.get("VersionId"), bytes=reader.object_bytes,
                    object_sha256=reader.object_sha256.hexdigest(),
                    archive_sha256=reader.archive_sha256, archive_bytes=reader.archive_bytes,
                    retain_until=head.get("ObjectLockRetainUntilDate") or retain_until)


def download(client, bucket: str, key: str, target: Path) -> int:
    """Stream an object into a new 0600 file; its size."""
    with create_private(target) as out:
        client.download_fileobj(bucket, key, out, Config=transfer_config())
    return target.stat().st_size


def delete(client, bucket: str, key: str, version_id: str | None) -> None:
    """Delete a copy; with a version id that version itself (in a versioned bucket, as Object
    Lock needs, deleting without one only hides the data behind a delete marker)."""
    args = {"Bucket": bucket, "Key": key}
    if version_id:
        args["VersionId"] = version_id
    client.delete_object(**args)


def list_copies(client, config: OffsiteConfig) -> list[dict[str, Any]]:
    """Every archive copy under the prefix with what its metadata says, newest first."""
    prefix = f"{config.prefix}/" if config.prefix else ""
    items = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=config.bucket, Prefix=prefix + ARCHIVE_PREFIX):
        for obj in page.get("Contents", []):
            meta = client.head_object(Bucket=config.bucket, Key=obj["Key"]).get("Metadata", {})
            items.append({
                "key": obj["Key"], "size": obj["Size"],
                "backup_id": meta.get(META_BACKUP_ID), "backup_type": meta.get(META_TYPE),
                "created": meta.get(META_CREATED),
                "archive_sha256": meta.get(META_ARCHIVE_SHA256),
                "encryption": meta.get(META_ENCRYPTION),
                "last_modified": obj["LastModified"].isoformat(),
            })
    return sorted(items, key=lambda i: i["key"], reverse=True)


def probe(client, config: OffsiteConfig) -> None:
    """Whether the bucket answers; raises OffsiteError with one line otherwise."""
    try:
        client.head_bucket(Bucket=config.bucket)
    except STORAGE_ERRORS as exc:
        raise OffsiteError(f"{config.url} does not answer: {describe_error(exc)}") from None
