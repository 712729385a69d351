"""Where Prefect keeps results — the per-order step cache — decided once per process from Settings.

- ``ORDERPIPE_FILE_STORE=local``: Prefect's local default, ``PREFECT_LOCAL_STORAGE_PATH``
  (``$PREFECT_HOME/storage``); every process running flows must see the same directory.
- ``ORDERPIPE_FILE_STORE=s3``: a prefect-aws ``S3Bucket`` block on ``ORDERPIPE_S3_BUCKET``,
  folder ``prefect-results/`` (endpoint ``AWS_ENDPOINT_URL_S3``, region ``AWS_REGION``), so
  a run retried on another machine hits the cache records the first machine wrote.

Prefect 3.8.8 takes result storage only as a *saved* block (``Task``/``Flow`` refuse an
unsaved instance: "Result storage configuration must be persisted server-side"), and as a
process-wide default only as a slug in ``PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK``
(``s3-bucket/<name>``), which every process resolves from the server itself. So
``configure_result_storage`` saves the block (idempotent, a name derived from bucket, folder,
endpoint and region), puts the slug in ``os.environ`` (children, forked or spawned, inherit
it) and refreshes Prefect's global settings (this process, and a child forked from it). The
tasks and flows need no argument of their own: the cached steps' ``persist_result`` records
and the flow results land in whatever this decided.

The block holds no secret: its ``AwsCredentials`` names no keys, so each process's boto3
reads its own (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, profiles, instance roles).

Call it once at start-up, before the first flow run, in the process that runs or forks the
flow runs (the worker).
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

from orderpipe.settings import Settings, SettingsError

if TYPE_CHECKING:
    from prefect_aws.s3 import S3Bucket

RESULTS_FOLDER = "prefect-results/"
DEFAULT_BLOCK_ENV = "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK"
BLOCK_TYPE_SLUG = "s3-bucket"

_configured: str | None = None  # the slug this module put into os.environ, if any


def s3_result_storage(settings: Settings) -> S3Bucket:
    """The S3Bucket block of these settings (not saved; no I/O)."""
    from prefect_aws import AwsClientParameters, AwsCredentials
    from prefect_aws.s3 import S3Bucket

    if not settings.orderpipe_s3_bucket:
        raise SettingsError(
            "ORDERPIPE_FILE_STORE=s3 keeps Prefect results in S3 too: missing ORDERPIPE_S3_BUCKET"
        )
    config = {"s3": {"addressing_style": "path"}} if settings.aws_endpoint_url_s3 else None
    credentials = AwsCredentials(
        region_name=settings.aws_region or None,
        aws_client_parameters=AwsClientParameters(endpoint_url=settings.aws_endpoint_url_s3 or None, config=config),
    )
    return S3Bucket(bucket_name=settings.orderpipe_s3_bucket, bucket_folder=RESULTS_FOLDER, credentials=credentials)


def block_name(settings: Settings) -> str:
    """One block per bucket, folder, endpoint and region: shops sharing a server never collide."""
    where = "|".join([settings.orderpipe_s3_bucket or "", RESULTS_FOLDER, settings.aws_endpoint_url_s3 or "",
                      settings.aws_region or ""])
    return f"orderpipe-results-{hashlib.sha256(where.encode()).hexdigest()[:12]}"


def configure_result_storage(settings: Settings) -> str | None:
    """Decide this process's (and its children's) Prefect result storage; the block slug or None.

    Local: ``PREFECT_LOCAL_STORAGE_PATH`` stays the default (a slug this module set earlier is
    removed). S3: the block is saved on the Prefect server at ``PREFECT_API_URL`` and becomes
    the default. Raises ``SettingsError`` naming the variable that is missing."""
    global _configured
    from prefect.context import refresh_global_settings_context

    if settings.orderpipe_file_store != "s3":
        if _configured is not None and os.environ.get(DEFAULT_BLOCK_ENV) == _configured:
            os.environ.pop(DEFAULT_BLOCK_ENV, None)
            refresh_global_settings_context()
        _configured = None
        return None

    block = s3_result_storage(settings)
    _require_prefect_api()
    name = block_name(settings)
    slug = f"{BLOCK_TYPE_SLUG}/{name}"
    try:
        block.save(name, overwrite=True)
    except Exception as exc:  # noqa: BLE001 - named below; another worker may have saved the same block
        if not _saved(slug):
            raise RuntimeError(f"cannot save the Prefect result storage block {slug} "
                               f"(s3://{settings.orderpipe_s3_bucket}/{RESULTS_FOLDER}): {exc}") from exc
    os.environ[DEFAULT_BLOCK_ENV] = slug
    _configured = slug
    refresh_global_settings_context()
    return slug


def _require_prefect_api() -> None:
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url:
        raise SettingsError(
            "ORDERPIPE_FILE_STORE=s3 keeps Prefect results in an S3 block saved on the Prefect server: "
            "missing PREFECT_API_URL"
        )


def _saved(slug: str) -> bool:
    from prefect.blocks.core import Block

    try:
        Block.load(slug)
    except Exception:  # noqa: BLE001 - any failure means "not usable"
        return False
    return True


def warm_result_storage() -> None:
    """Resolve the default result storage once in the worker: Prefect caches the resolved
    storage per process, so every forked flow run inherits it instead of asking the server."""
    from prefect.results import get_default_result_storage

    try:
        get_default_result_storage(_sync=True)  # type: ignore[call-overload]
    except Exception:  # noqa: BLE001 - only an optimisation; a run resolves it itself
        pass
