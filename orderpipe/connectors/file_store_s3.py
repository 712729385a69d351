"""S3 (or any S3-compatible store) as orderpipe's FileStore, through boto3.

Object keys: the folder of orderpipe's relative key picks the prefix, the basename follows.
``invoices/...`` (invoices and credit notes) go under ``ORDERPIPE_S3_INVOICE_PREFIX``
(default ``invoices/``), everything else (labels) under ``ORDERPIPE_S3_PREFIX`` (default
``labels/``): key ``labels/pi_x.pdf`` is stored as ``<ORDERPIPE_S3_PREFIX>pi_x.pdf`` and
``invoices/2026-000001.pdf`` as ``<ORDERPIPE_S3_INVOICE_PREFIX>2026-000001.pdf``. Basenames
are unique within each folder (pi ids, invoice and credit note numbers, distinct
extensions), and a PUT to the same key with the same bytes is naturally idempotent.

Each ``put`` returns the relative key it was given and a presigned GET URL valid for 7 days
(SigV4's maximum; a URL signed with temporary credentials stops working when they expire).
``get`` and ``exists`` read back what any machine put, so no machine needs another's disk.

Retention (``orderpipe purge`` / ``forget``) lists and deletes objects by their bucket keys
(``list_objects``, ``delete_objects``) and removes only what ``is_label_key`` accepts:
``<ORDERPIPE_S3_PREFIX><PaymentIntent id>.pdf``, flat under the prefix, never an invoice or
credit note object, whatever the two prefixes are (equal, or one inside the other).

boto3 reads its own credentials (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, profiles,
instance roles); ``AWS_ENDPOINT_URL_S3`` and ``AWS_REGION`` come through Settings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError, NoCredentialsError

from orderpipe.connectors.base import StoredFile
from orderpipe.errors import PermanentError, StepError, TransientError
from orderpipe.settings import Settings

PRESIGN_SECONDS = 7 * 24 * 3600  # 604800, SigV4's maximum
INVOICE_FOLDER = "invoices"  # orderpipe's folder of invoices and credit notes
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
TRANSIENT_CODES = frozenset({
    "SlowDown", "Throttling", "ThrottlingException", "RequestThrottled", "TooManyRequestsException",
    "RequestTimeout", "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable", "503", "500",
})
#: What a label is called: ``<order id>.pdf``, and order ids are PaymentIntent ids (``pi_...``).
LABEL_NAME = re.compile(r"pi_[A-Za-z0-9_-]+\.pdf")
#: What an invoice or credit note is called: ``2026-000001.pdf``, ``CN-2026-000001.xml``.
INVOICE_NAME = re.compile(r"(?:CN-)?\d{4}-\d+\.(?:pdf|xml)")
DELETE_BATCH = 1000  # DeleteObjects' maximum per request


@dataclass(frozen=True)
class StoredObject:
    """One object of the bucket as a listing shows it."""

    key: str  # the object key in the bucket (with its prefix)
    last_modified: datetime  # aware, UTC


def s3_error(what: str, exc: Exception) -> StepError:
    """Classify a boto3 failure: throttling, 5xx and network trouble are transient."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        message = str(error.get("Message") or "")[:200]
        text = f"{what}: {code or 'error'} (HTTP {status or '?'}){': ' + message if message else ''}"
        if code in TRANSIENT_CODES or status >= 500 or status == 429:
            return TransientError(text)
        return PermanentError(text)
    if isinstance(exc, NoCredentialsError):
        return PermanentError(f"{what}: no AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
    if isinstance(exc, ConnectionError | HTTPClientError):
        return TransientError(f"{what}: {type(exc).__name__}")
    return PermanentError(f"{what}: {type(exc).__name__}")


class S3FileStore:
    """FileStore writing to one bucket: labels under ``ORDERPIPE_S3_PREFIX``, invoices under
    ``ORDERPIPE_S3_INVOICE_PREFIX``."""

    name = "s3"

    def __init__(self, settings: Settings, *, max_attempts: int = 3, connect_timeout: float = 5,
                 read_timeout: float = 30) -> None:
        if not settings.orderpipe_s3_bucket:
            raise PermanentError("S3 file store is not configured: missing ORDERPIPE_S3_BUCKET")
        self.bucket = settings.orderpipe_s3_bucket
        self.prefix = settings.orderpipe_s3_prefix or ""
        self.invoice_prefix = settings.orderpipe_s3_invoice_prefix or ""
        self.list_page_size = 1000  # ListObjectsV2's maximum (tests page smaller)
        self.delete_batch = DELETE_BATCH
        s3_options: dict[str, Any] = {}
        if settings.aws_endpoint_url_s3:
            # S3-compatible stores (MinIO, Ceph, moto, ...) generally want path-style URLs.
            s3_options["addressing_style"] = "path"
        config = Config(
            signature_version="s3v4",
            s3=s3_options,
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # Plain bodies with a checksum header, not aws-chunked trailers (doc section 11).
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=settings.aws_endpoint_url_s3 or None, region_name=settings.aws_region or None,
            config=config,
        )

    def object_key(self, key: str) -> str:
        """``labels/pi_x.pdf`` -> ``<prefix>pi_x.pdf``; ``invoices/n.pdf`` -> ``<invoice prefix>n.pdf``."""
        path = PurePosixPath(key)
        base = path.name
        if not base or base in (".", "..") or key.endswith("/"):
            raise PermanentError(f"S3 file store: invalid key {key!r} (must name a file, like labels/x.pdf)")
        folder = path.parts[0] if len(path.parts) > 1 else ""
        prefix = self.invoice_prefix if folder == INVOICE_FOLDER else self.prefix
        return f"{prefix}{base}"

    def label_object_key(self, order_id: str) -> str:
        """The bucket key of an order's label: ``<prefix><order id>.pdf``."""
        return self.object_key(f"labels/{order_id}.pdf")

    def is_invoice_object(self, object_key: str) -> bool:
        return is_invoice_key(object_key, self.invoice_prefix)

    def is_label_object(self, object_key: str) -> bool:
        return is_label_key(object_key, self.prefix, self.invoice_prefix)

    def list_objects(self, prefix: str) -> Iterator[StoredObject]:
        """Every object whose bucket key starts with ``prefix`` (all pages of ListObjectsV2)."""
        where = f"S3 list s3://{self.bucket}/{prefix}"
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": self.list_page_size})
            for page in pages:
                for item in page.get("Contents", []):
                    yield StoredObject(key=item["Key"], last_modified=item["LastModified"])
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(where, exc) from None

    def delete_objects(self, object_keys: Sequence[str]) -> int:
        """Delete objects by bucket key (DeleteObjects, up to 1000 a request); how many were
        asked for. A key that does not exist counts too (S3 reports it deleted). Refuses, before
        sending anything, a key that may be an invoice or credit note."""
        keys = list(dict.fromkeys(object_keys))
        guarded = [k for k in keys if self.is_invoice_object(k)]
        if guarded:
            raise PermanentError(f"S3 delete: refusing to delete invoice objects {', '.join(guarded[:5])} "
                                 "(Finnish Accounting Act)")
        for start in range(0, len(keys), self.delete_batch):
            batch = keys[start:start + self.delete_batch]
            where = f"S3 delete of {len(batch)} objects in s3://{self.bucket}"
            try:
                response = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
            except (ClientError, BotoCoreError) as exc:
                raise s3_error(where, exc) from None
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                code = str(first.get("Code", ""))
                text = (f"{where}: {len(errors)} not deleted, e.g. {first.get('Key')}: {code or 'error'}"
                        f"{': ' + str(first.get('Message'))[:200] if first.get('Message') else ''}")
                raise TransientError(text) if code in TRANSIENT_CODES else PermanentError(text)
        return len(keys)

    def put(self, key: str, data: bytes, content_type: str) -> StoredFile:
        object_key = self.object_key(key)
        where = f"S3 put s3://{self.bucket}/{object_key}"
        try:
            self.client.put_object(Bucket=self.bucket, Key=object_key, Body=data, ContentType=content_type,
                                   Metadata={"orderpipe-key": key})
            url = self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": object_key}, ExpiresIn=PRESIGN_SECONDS
            )
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(where, exc) from None
        return StoredFile(key=key, url=url)

    def get(self, key: str) -> bytes:
        object_key = self.object_key(key)
        where = f"S3 get s3://{self.bucket}/{object_key}"
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=object_key)
            return bytes(response["Body"].read())
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(where, exc) from None

    def exists(self, key: str) -> bool:
        object_key = self.object_key(key)
        try:
            self.client.head_object(Bucket=self.bucket, Key=object_key)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) in NOT_FOUND_CODES:
                return False
            raise s3_error(f"S3 head s3://{self.bucket}/{object_key}", exc) from None
        except BotoCoreError as exc:
            raise s3_error(f"S3 head s3://{self.bucket}/{object_key}", exc) from None
        return True

    def check(self) -> None:
        """Credentials, bucket and reachability; writes nothing."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(f"S3 check of bucket {self.bucket}", exc) from None

    def link(self, key: str) -> str:
        """A presigned GET URL a person can open (7 days; computed locally, no request)."""
        object_key = self.object_key(key)
        try:
            return str(self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": object_key}, ExpiresIn=PRESIGN_SECONDS))
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(f"S3 presign s3://{self.bucket}/{object_key}", exc) from None


def is_invoice_key(object_key: str, invoice_prefix: str) -> bool:
    """Whether a bucket key may be an invoice or credit note: named like one, directly under
    the invoice prefix. Such an object is never deleted (Finnish Accounting Act)."""
    rest = _flat_rest(object_key, invoice_prefix)
    return rest is not None and INVOICE_NAME.fullmatch(rest) is not None


def is_label_key(object_key: str, prefix: str, invoice_prefix: str) -> bool:
    """Whether a bucket key is a label orderpipe stored: ``<prefix>pi_....pdf`` directly under
    the label prefix (no deeper ``/``), and not possibly an invoice. Invoice names never start
    with ``pi_``, so equal or nested label and invoice prefixes cannot mix them up."""
    rest = _flat_rest(object_key, prefix)
    return (rest is not None and LABEL_NAME.fullmatch(rest) is not None
            and not is_invoice_key(object_key, invoice_prefix))


def _flat_rest(object_key: str, prefix: str) -> str | None:
    """The name after ``prefix`` when the key is directly under it (no further ``/``), else None."""
    if not object_key.startswith(prefix):
        return None
    rest = object_key[len(prefix):]
    return rest if rest and "/" not in rest else None
