"""Two processes never run the same step of the same order at once (issue 9), and `orderpipe
replay` refuses an order whose run is live (contract, "The CLI")."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Running

from orderpipe import ledger
from orderpipe.db import get_engine
from orderpipe.settings import load_settings
from orderpipe.step_locks import OrderStepLocks
from tests.conftest import REPO


def _locks_for(db_url: str, data_dir: Path) -> OrderStepLocks:
    settings = load_settings(connectors=False, DATABASE_URL=db_url, ORDERPIPE_DATA_DIR=str(data_dir))
    return OrderStepLocks(OrderStepLocks.for_settings(settings))


def test_step_lock_excludes_a_second_holder_until_released(any_db_url: str, data_dir: Path) -> None:
    locks = _locks_for(any_db_url, data_dir)
    key = "crm-order-pi_LOCK1"
    assert not locks.is_locked(key)
    assert locks.acquire_lock(key, "holder-a")
    assert locks.is_locked(key) and locks.is_lock_holder(key, "holder-a")
    assert not locks.is_lock_holder(key, "holder-b")
    assert locks.acquire_lock(key, "holder-b", acquire_timeout=0.3) is False
    got: list[float] = []
    t = threading.Thread(target=lambda: got.append(locks.acquire_lock(key, "holder-b") and time.monotonic()))
    t.start()
    time.sleep(0.5)
    released_at = time.monotonic()
    locks.release_lock(key, "holder-a")
    t.join(5)
    assert got and got[0] >= released_at  # b got it only after a let go
    assert locks.is_lock_holder(key, "holder-b")
    assert locks.acquire_lock("crm-order-pi_OTHER", "holder-c", acquire_timeout=0.3)  # other keys: independent
    locks.release_lock(key, "holder-b")
    locks.release_lock("crm-order-pi_OTHER", "holder-c")
    assert locks.wait_for_lock(key, timeout=1) and not locks.is_locked(key)


PROBE = textwrap.dedent("""
    import os, sys, time
    from prefect import flow, task
    from tasks.step_policy import CACHED_STEP

    @task(name="probe_step", **CACHED_STEP)
    def probe_step(order_id: str) -> str:
        with open(os.environ["PROBE_CALLS"], "a") as f:  # the "vendor"
            f.write(f"{os.getpid()}\\n")
        time.sleep(3)
        return f"booked {order_id}"

    @flow(name="probe-flow")
    def probe_flow(order_id: str) -> str:
        return probe_step(order_id)

    open(os.environ["PROBE_READY"] + str(os.getpid()), "w").close()
    while not os.path.exists(os.environ["PROBE_GO"]):
        time.sleep(0.02)
    print("RESULT", probe_flow(sys.argv[1]))
""")


def test_two_processes_running_one_step_of_one_order_call_the_vendor_once(
        prefect_api: str, any_db_url: str, data_dir: Path) -> None:
    calls = data_dir / "calls.txt"
    go = data_dir / "go"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_API_URL=prefect_api, PREFECT_LOCAL_STORAGE_PATH=str(data_dir / "results"),
               PREFECT_LOGGING_LEVEL="WARNING", PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1",
               DATABASE_URL=any_db_url, ORDERPIPE_DATA_DIR=str(data_dir), PROBE_CALLS=str(calls),
               PROBE_READY=str(data_dir / "ready-"), PROBE_GO=str(go), PYTHONPATH=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-c", PROBE, "pi_TWICE"], env=env, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        deadline = time.monotonic() + 120
        while len(list(data_dir.glob("ready-*"))) < 2 and time.monotonic() < deadline:
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.1)
        go.touch()  # both start the step at the same moment
        outs = [p.communicate(timeout=180) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], outs
    assert all("RESULT booked pi_TWICE" in out for out, _ in outs), outs
    assert len(calls.read_text().splitlines()) == 1  # the vendor was called once


def test_replay_of_a_running_run_is_refused_with_exit_2(prefect_api: str, sqlite_url: str, data_dir: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from orderpipe.cli import main

    engine = get_engine(sqlite_url)
    ledger.record_missing_order(engine, "pi_LIVE1", source="test")
    with temporary_settings(updates={PREFECT_API_URL: prefect_api}), get_client(sync_client=True) as client:
        from prefect import flow

        @flow(name="live-probe")
        def live_probe() -> None:
            pass

        run = client.create_flow_run(live_probe, name="order-pi_LIVE1", state=Running())
        ledger.set_order_state(engine, "pi_LIVE1", "running", flow_run_id=str(run.id))
        monkeypatch.setenv("DATABASE_URL", sqlite_url)
        monkeypatch.setenv("ORDERPIPE_DATA_DIR", str(data_dir))
        monkeypatch.setenv("PREFECT_API_URL", prefect_api)
        with pytest.raises(SystemExit) as exc:
            main(["replay", "pi_LIVE1", "--no-wait"])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert "refused" in err and "live" in err and "Running" in err
        after = client.read_flow_run(run.id)
        assert after.state is not None and after.state.name == "Running" and after.run_count == run.run_count
