"""Browser: a person opens a demo order's flow run in the Prefect UI and reads its story.

Starts the real stack (`orderpipe up`: Prefect server with its UI, worker, receiver) and the
Stripe stand-in, sends one sample order as a signed webhook, then drives headless Chromium
(Playwright, Debian's /usr/bin/chromium) to the run's page `/runs/flow-run/<id>` and finds
the task runs named for step and order, a business line in the Logs tab and the order's
artifact. Screenshots of each tab go to `$ORDERPIPE_SCREENSHOT_DIR` (default
`.orderpipe/screenshots/` in the checkout) and to the test's tmp dir; the paths are printed.

Skipped, loudly, only where Chromium (or Playwright) cannot start. `ORDERPIPE_CHROMIUM`
names another Chromium binary.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orderpipe.artifact import artifact_key, steps_table_key
from orderpipe.db import get_engine
from orderpipe.orders import ledger
from orderpipe.states import STEPS, OrderState
from orderpipe.stripe_api.standin import DEFAULT_API_KEY, StandinServer, StandinStore, seed_store
from orderpipe.stripe_api.standin.events import fulfilment_events, signed_delivery
from orderpipe.stripe_api.standin.samples import FI_CONSUMER
from tests.conftest import REPO, free_port

pytestmark = pytest.mark.e2e
SECRET = "whsec_browser_test"
CHROMIUM = os.environ.get("ORDERPIPE_CHROMIUM", "/usr/bin/chromium")
UI_TIMEOUT_MS = 30_000


def screenshot_dir() -> Path:
    return Path(os.environ.get("ORDERPIPE_SCREENSHOT_DIR") or REPO / ".orderpipe" / "screenshots")


def skip_loudly(reason: str) -> None:
    """A skip that shows in every run's summary (a warning), not only with -rs."""
    message = f"BROWSER TEST SKIPPED: {reason}"
    warnings.warn(message, UserWarning, stacklevel=2)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium, or a loud skip when it cannot start (checked before the stack starts)."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as exc:
        skip_loudly(f"playwright is not installed ({exc}); `make install` adds it")
    if not Path(CHROMIUM).exists():
        skip_loudly(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                  args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
        except Error as exc:
            skip_loudly(f"Chromium at {CHROMIUM} cannot start: {str(exc).splitlines()[0]}")
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def ui_stack(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`orderpipe up` with the Prefect UI on and run logs at INFO (the default), and one order sent."""
    root = tmp_path_factory.mktemp("ui")
    data_dir = root / "data"
    store = StandinStore(api_key=DEFAULT_API_KEY)
    seed_store(store)
    standin = StandinServer(store).start()
    port, prefect_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ORDERPIPE_", "DATABASE_URL"))}
    env.update({
        "ORDERPIPE_DATA_DIR": str(data_dir), "ORDERPIPE_PORT": str(port), "PREFECT_SERVER_API_PORT": str(prefect_port),
        "STRIPE_API_BASE": standin.url, "STRIPE_API_KEY": DEFAULT_API_KEY, "STRIPE_WEBHOOK_SECRET": SECRET,
        "PREFECT_LOGGING_LEVEL": "INFO", "PYTHONUNBUFFERED": "1",
    })
    log = root / "up.log"
    out = open(log, "wb")  # noqa: SIM115 - handed to the child
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "orderpipe.cli", "up"], env=env, cwd=REPO, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        milestones: dict[str, float] = {}  # when each part said it was up (the log has no timestamps)
        while "orderpipe is up" not in (text := log.read_text()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"orderpipe up did not start: {text[-3000:]}")
            for part in ("prefect server", "worker", "receiver"):
                if f"\n{part} " in f"\n{text}" and part not in milestones:
                    milestones[part] = time.monotonic() - started
            time.sleep(0.3)
        up_s = time.monotonic() - started
        for event in fulfilment_events(store, FI_CONSUMER, delivered=True):
            body, headers = signed_delivery(event, SECRET)
            r = httpx.post(f"http://127.0.0.1:{port}/webhooks/stripe", content=body, headers=headers, timeout=30)
            assert r.status_code == 200, r.text
        engine = get_engine(f"sqlite:///{data_dir / 'orderpipe.db'}")
        deadline = time.monotonic() + 120
        while True:
            row = ledger.get_order(engine, FI_CONSUMER)
            if row is not None and row.state in (OrderState.COMPLETED, OrderState.FAILED):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"order not finished: {log.read_text()[-3000:]}")
            time.sleep(0.3)
        assert row.state == OrderState.COMPLETED, row.last_error
        yield {"ui": f"http://127.0.0.1:{prefect_port}", "row": row, "tmp": root, "up_s": up_s,
               "milestones": milestones, "order_s": time.monotonic() - started - up_s}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        out.close()
        standin.stop()


def test_flow_run_page_shows_task_names_a_business_log_line_and_the_artifact(
    browser: Any, ui_stack: dict[str, Any], capsys: pytest.CaptureFixture[str],
) -> None:
    row = ui_stack["row"]
    shots = screenshot_dir()
    shots.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.set_default_timeout(UI_TIMEOUT_MS)
    started = time.monotonic()

    def shot(name: str) -> None:
        path = ui_stack["tmp"] / f"prefect-ui-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        shutil.copyfile(path, shots / path.name)
        saved.append(shots / path.name)

    def tab(name: str) -> None:
        page.locator("li.p-tab", has_text=name).first.click()

    try:
        page.goto(f"{ui_stack['ui']}/runs/flow-run/{row.flow_run_id}", wait_until="domcontentloaded")
        page.get_by_text(f"order-{FI_CONSUMER}").first.wait_for()

        # Task Runs: one per step, named "<step> · <order id>"
        tab("Task Runs")
        for step in STEPS:
            page.get_by_text(f"{step} · {FI_CONSUMER}", exact=True).first.wait_for()
        shot("task-runs")

        # Logs: the business outcome of the shipment step (tracking number and carrier)
        tab("Logs")
        page.get_by_text(f"tracking number {row.tracking_number}").first.wait_for()
        page.get_by_text(f"invoice: {row.invoice_number} issued").first.wait_for()
        shot("logs")

        # Artifacts: the order's markdown summary and its steps table; the summary opens
        tab("Artifacts")
        page.get_by_text(steps_table_key(FI_CONSUMER), exact=True).first.wait_for()
        page.get_by_text(artifact_key(FI_CONSUMER), exact=True).first.wait_for()
        shot("artifacts")
        page.get_by_text(artifact_key(FI_CONSUMER), exact=True).first.click()
        page.get_by_text(row.tracking_number, exact=False).first.wait_for()
        page.get_by_text(f"labels/{FI_CONSUMER}.pdf").first.wait_for()
        shot("artifact")
    except Exception:
        shot("failure")
        raise
    finally:
        page.close()
        with capsys.disabled():
            parts = ", ".join(f"{k} {v:.1f} s" for k, v in ui_stack["milestones"].items())
            print(f"\nbrowser test: stack up in {ui_stack['up_s']:.1f} s ({parts}), order done in "
                  f"{ui_stack['order_s']:.1f} s, UI checks {time.monotonic() - started:.1f} s; screenshots:")
            for path in saved:
                print(f"  {path}")
