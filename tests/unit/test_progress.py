"""Progress where people wait: bars on a terminal, plain lines in CI logs."""

from __future__ import annotations

import io

from orderpipe.demo import _where
from orderpipe.progress import CountProgress, OrderProgress, is_live
from orderpipe.states import STEPS, OrderState, Step, StepState


def test_not_a_terminal_gives_plain_lines_with_a_heartbeat() -> None:
    out = io.StringIO()
    assert not is_live(out)
    with OrderProgress(["pi_1", "pi_2"], len(STEPS), stream=out, heartbeat=0) as progress:
        progress.update("pi_1", 2, "shipment running")
        progress.finish("pi_2", "completed", 3.04)
    lines = out.getvalue().splitlines()
    assert "\x1b" not in out.getvalue()  # no escape codes in CI logs
    assert any("waiting: pi_1 (shipment running), pi_2 (waiting)" in line for line in lines)
    assert "  pi_2: completed after 3.0 s" in lines


def test_bars_render_on_a_terminal() -> None:
    out = io.StringIO()
    with OrderProgress(["pi_1"], len(STEPS), stream=out, live=True) as progress:
        progress.update("pi_1", 3, "invoice running")
        progress.finish("pi_1", "completed", 1.5)
    assert "pi_1" in out.getvalue() and "completed after 1.5 s" in out.getvalue()


def test_count_progress_plain_and_live() -> None:
    out = io.StringIO()
    plain = CountProgress("burst", stream=out, heartbeat=0)
    plain.update("done 3/10", completed=3, total=10)
    plain.done("10/10 completed")
    assert out.getvalue().splitlines()[0].startswith("  burst: done 3/10")
    assert out.getvalue().splitlines()[-1].startswith("  burst: 10/10 completed")
    live_out = io.StringIO()
    live = CountProgress("burst", stream=live_out, live=True)
    live.update("done 3/10", completed=3, total=10)
    live.done("10/10 completed")
    assert live_out.getvalue().rstrip().splitlines()[-1].startswith("  burst: 10/10 completed")


def test_demo_says_which_step_an_order_is_at() -> None:
    steps = {s: StepState.PENDING for s in STEPS} | {Step.FETCH_ORDER: StepState.COMPLETED,
                                                      Step.CRM: StepState.RUNNING, Step.SHIPMENT: StepState.FAILED}
    assert _where(steps, OrderState.RUNNING) == (1, "crm running (shipment failed, retrying)")
    assert _where({s: StepState.PENDING for s in STEPS}, OrderState.RECEIVED) == (0, "waiting for a worker")
