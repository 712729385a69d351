"""Prefect results of the cached steps in S3 (ORDERPIPE_FILE_STORE=s3): a run on another
machine — its own, empty PREFECT_LOCAL_STORAGE_PATH — hits the cache records the first wrote.

Real parts only: a Prefect server, moto's S3 server, the Stripe stand-in, the flow in-process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.context import refresh_global_settings_context
from prefect.settings import PREFECT_API_URL, PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK, temporary_settings

from flows.process_order import process_order
from orderpipe import result_storage
from orderpipe.audit import step_of_task_run_name
from orderpipe.db import get_engine
from orderpipe.orders import ledger
from orderpipe.result_storage import DEFAULT_BLOCK_ENV, RESULTS_FOLDER, configure_result_storage
from orderpipe.settings import Settings, SettingsError, load_settings
from orderpipe.stripe_api.standin import StandinStore
from orderpipe.stripe_api.standin.samples import FI_CONSUMER
from tests.flow_env import flow_settings
from tests.standins.s3 import MotoS3
from tests.standins.stripe import running_standin

REGION = "eu-north-1"
AWS_KEY, AWS_SECRET = "testing", "testing-secret"
CACHED_STEPS = ("crm", "production_log", "shipment", "invoice", "email")


@pytest.fixture
def results_prefect_api(prefect_api: str) -> str:
    """The session's flow-test server: in-process runs ship their events through one
    process-wide events client, so every in-process flow test talks to the same server."""
    return prefect_api


@pytest.fixture(scope="module")
def results_moto() -> Iterator[MotoS3]:
    with MotoS3() as server:
        yield server


@pytest.fixture
def stripe() -> Iterator[tuple[str, StandinStore]]:
    with running_standin(seed=True) as pair:
        yield pair


@pytest.fixture
def s3_env(results_moto: MotoS3, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A fresh bucket and the environment of the S3 file store; the process's result storage
    decision is undone afterwards."""
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", DEFAULT_BLOCK_ENV):
        monkeypatch.delenv(name, raising=False)
    bucket = f"orderpipe-results-{uuid.uuid4().hex[:12]}"
    admin = boto3.client("s3", endpoint_url=results_moto.url, region_name=REGION, aws_access_key_id=AWS_KEY,
                         aws_secret_access_key=AWS_SECRET)
    admin.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    yield {"ORDERPIPE_FILE_STORE": "s3", "ORDERPIPE_S3_BUCKET": bucket, "AWS_ENDPOINT_URL_S3": results_moto.url,
           "AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": AWS_KEY, "AWS_SECRET_ACCESS_KEY": AWS_SECRET}
    os.environ.pop(DEFAULT_BLOCK_ENV, None)
    result_storage._configured = None
    refresh_global_settings_context()


def _bucket_keys(env: dict[str, str], prefix: str = "") -> list[str]:
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"], region_name=REGION,
                      aws_access_key_id=AWS_KEY, aws_secret_access_key=AWS_SECRET)
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=env["ORDERPIPE_S3_BUCKET"], Prefix=prefix)
                  .get("Contents", []))


def _step_states(db_url: str, order_id: str) -> dict[str, str]:
    """State name of each step's task run in the order's latest flow run, as the server has it."""
    import time

    row = ledger.get_order(get_engine(db_url), order_id)
    assert row is not None and row.flow_run_id
    deadline = time.monotonic() + 15  # the server records task runs in batches, up to ~1 s late
    while True:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[row.flow_run_id])))
        states = {step_of_task_run_name(r.name): r.state.name for r in runs if r.state is not None}
        final = {k: v for k, v in states.items() if v in ("Completed", "Cached", "Failed")}
        if set(ledger.STEPS) <= set(final) or time.monotonic() > deadline:
            return states
        time.sleep(0.2)


def _run_on_machine(monkeypatch: pytest.MonkeyPatch, api: str, stripe_base: str, data_dir: Path, db_url: str,
                    env: dict[str, str]) -> dict[str, str]:
    """One "machine": its own data dir and PREFECT_LOCAL_STORAGE_PATH, the shared database and
    bucket; the result storage decided at its start-up. Returns the steps' task-run states."""
    data_dir.mkdir(parents=True)
    with flow_settings(monkeypatch, api, data_dir, db_url, stripe_base, **env):
        slug = configure_result_storage(load_settings())
        updates: dict[Any, Any] = {PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK: slug} if slug else {}
        # flow_settings' own settings context predates the decision: carry it in.
        with temporary_settings(updates=updates, restore_defaults=set() if slug else
                                {PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK}):
            result = process_order(order_id=FI_CONSUMER)
            assert result["steps"] == {s: "completed" for s in ledger.STEPS}
            return _step_states(db_url, FI_CONSUMER)


def _local_results(data_dir: Path) -> list[str]:
    storage = data_dir / "prefect-results"  # flow_settings' PREFECT_LOCAL_STORAGE_PATH
    return sorted(p.name for p in storage.iterdir()) if storage.exists() else []


def test_a_cached_step_written_on_one_machine_is_hit_on_another_with_empty_local_storage(
    results_prefect_api: str, stripe: tuple[str, StandinStore], s3_env: dict[str, str], sqlite_url: str,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    stripe_base, _store = stripe
    ledger.record_missing_order(get_engine(sqlite_url), FI_CONSUMER, source="test")

    first = _run_on_machine(monkeypatch, results_prefect_api, stripe_base, tmp_path / "machine-a", sqlite_url,
                            s3_env)
    assert {first[s] for s in CACHED_STEPS} == {"Completed"}
    results = _bucket_keys(s3_env, RESULTS_FOLDER)
    assert {f"{RESULTS_FOLDER}{step}-order-{FI_CONSUMER}" for step in CACHED_STEPS} <= set(results)
    assert _local_results(tmp_path / "machine-a") == []  # nothing on the first machine's disk

    second = _run_on_machine(monkeypatch, results_prefect_api, stripe_base, tmp_path / "machine-b", sqlite_url,
                             s3_env)
    assert {second[s] for s in CACHED_STEPS} == {"Cached"}  # not run again: read from the bucket
    assert second["fetch_order"] == "Completed"  # never cached: the order is read back every time
    assert _local_results(tmp_path / "machine-b") == []
    # The invoice and label the first machine stored are in the bucket, not on either disk.
    number = ledger.get_order(get_engine(sqlite_url), FI_CONSUMER).invoice_number  # type: ignore[union-attr]
    assert f"invoices/{number}.pdf" in _bucket_keys(s3_env, "invoices/")
    assert not (tmp_path / "machine-a" / "invoices").exists() and not (tmp_path / "machine-b" / "invoices").exists()


def test_with_the_local_store_another_local_storage_path_misses_the_cache(
    results_prefect_api: str, stripe: tuple[str, StandinStore], s3_env: dict[str, str], sqlite_url: str,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The control: with ORDERPIPE_FILE_STORE=local the cache is PREFECT_LOCAL_STORAGE_PATH, so
    a machine with a different (empty) one runs every step again (idempotently)."""
    stripe_base, _store = stripe
    ledger.record_missing_order(get_engine(sqlite_url), FI_CONSUMER, source="test")
    local = {**s3_env, "ORDERPIPE_FILE_STORE": "local"}

    first = _run_on_machine(monkeypatch, results_prefect_api, stripe_base, tmp_path / "machine-a", sqlite_url,
                            local)
    assert {first[s] for s in CACHED_STEPS} == {"Completed"}
    assert {f"{step}-order-{FI_CONSUMER}" for step in CACHED_STEPS} <= set(_local_results(tmp_path / "machine-a"))
    second = _run_on_machine(monkeypatch, results_prefect_api, stripe_base, tmp_path / "machine-b", sqlite_url,
                             local)
    assert {second[s] for s in CACHED_STEPS} == {"Completed"}
    assert _bucket_keys(s3_env) == []


def test_a_forked_child_and_a_spawned_process_inherit_the_decision(
    results_prefect_api: str, s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As the worker does: decide at start-up in the global settings, then fork a child per run."""
    for name, value in s3_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PREFECT_API_URL", results_prefect_api)
    refresh_global_settings_context()
    try:
        slug = configure_result_storage(load_settings())
        assert slug and os.environ[DEFAULT_BLOCK_ENV] == slug

        pid = os.fork()
        if pid == 0:  # the child: resolve the default result storage itself and write through it
            code = 1
            try:
                from prefect.results import get_default_result_storage

                get_default_result_storage(_sync=True).write_path("fork-probe", b"written by a forked child")
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert _bucket_keys(s3_env, RESULTS_FOLDER) == [f"{RESULTS_FOLDER}fork-probe"]

        probe = ("from prefect.results import get_default_result_storage as g; s = g(_sync=True); "
                 "print(type(s).__name__, s.bucket_name, s.bucket_folder)")
        out = subprocess.run([sys.executable, "-c", probe], env=dict(os.environ), capture_output=True, text=True,
                             timeout=120, check=True).stdout.split()
        assert out == ["S3Bucket", s3_env["ORDERPIPE_S3_BUCKET"], RESULTS_FOLDER]
    finally:
        monkeypatch.delenv("PREFECT_API_URL")
        refresh_global_settings_context()


def test_configuration_errors_name_the_variable(s3_env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="missing ORDERPIPE_S3_BUCKET"):
        configure_result_storage(Settings.model_construct(orderpipe_file_store="s3", orderpipe_s3_bucket=None))
    s3 = Settings.model_construct(orderpipe_file_store="s3", orderpipe_s3_bucket=s3_env["ORDERPIPE_S3_BUCKET"])
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        with pytest.raises(SettingsError, match="missing PREFECT_API_URL"):
            configure_result_storage(s3)
    assert DEFAULT_BLOCK_ENV not in os.environ
    assert configure_result_storage(Settings.model_construct(orderpipe_file_store="local")) is None
    assert DEFAULT_BLOCK_ENV not in os.environ
