"""Live progress where people wait (`make demo`, `make bench`): rich bars on a terminal,
plain lines when the output is not one (CI logs, pipes), so logs stay readable.

``OrderProgress``: one bar per order, advanced step by step, with the step it is at.
``CountProgress``: one bar counting units done out of a total (a benchmark burst).
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

HEARTBEAT_SECONDS = 10.0


def is_live(stream: TextIO) -> bool:
    """Bars only on a real terminal (not in CI, not through a pipe, not with TERM=dumb)."""
    return Console(file=stream).is_terminal and not Console(file=stream).is_dumb_terminal


class OrderProgress:
    """One bar per order on a terminal; otherwise a line when an order finishes and, while
    waiting, a line every HEARTBEAT_SECONDS naming the orders still running and their step."""

    def __init__(self, order_ids: list[str], total_steps: int, *, stream: TextIO | None = None,
                 live: bool | None = None, heartbeat: float = HEARTBEAT_SECONDS) -> None:
        self.stream = stream or sys.stdout
        self.live = is_live(self.stream) if live is None else live
        self.total = total_steps
        self.heartbeat = heartbeat
        self.started = time.monotonic()
        self._last_beat = self.started
        self._detail: dict[str, str] = {o: "waiting" for o in order_ids}
        self._done: dict[str, int] = dict.fromkeys(order_ids, 0)
        self._finished: set[str] = set()
        self._bars: Progress | None = None
        self._tasks: dict[str, Any] = {}
        if self.live:
            self._bars = Progress(SpinnerColumn(finished_text="[green]✓"), TextColumn("{task.fields[order]:<28}"),
                                  BarColumn(bar_width=24), MofNCompleteColumn(), TextColumn("{task.fields[detail]}"),
                                  TimeElapsedColumn(), console=Console(file=self.stream), transient=False)
            for order_id in order_ids:
                self._tasks[order_id] = self._bars.add_task(order_id, total=total_steps, order=order_id,
                                                            detail="waiting")

    def __enter__(self) -> OrderProgress:
        if self._bars is not None:
            self._bars.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bars is not None:
            self._bars.stop()

    def print(self, message: str) -> None:
        """A line above the bars (or a plain line)."""
        if self._bars is not None:
            self._bars.console.print(message, highlight=False, markup=False)
        else:
            print(message, file=self.stream, flush=True)

    def update(self, order_id: str, done: int, detail: str) -> None:
        """The order has ``done`` steps completed and is at ``detail`` (e.g. "shipment running")."""
        self._done[order_id], self._detail[order_id] = done, detail
        if self._bars is not None:
            self._bars.update(self._tasks[order_id], completed=done, detail=detail)
            return
        now = time.monotonic()
        if now - self._last_beat >= self.heartbeat:
            self._last_beat = now
            waiting = [o for o in self._detail if o not in self._finished]
            if waiting:
                print(f"  [{now - self.started:.0f} s] {len(self._finished)}/{len(self._detail)} finished; waiting: "
                      + ", ".join(f"{o} ({self._detail[o]})" for o in waiting), file=self.stream, flush=True)

    def finish(self, order_id: str, state: str, seconds: float) -> None:
        self._finished.add(order_id)
        if self._bars is not None:
            colour = "green" if state == "completed" else "red"
            self._bars.update(self._tasks[order_id], completed=self.total if state == "completed"
                              else self._done[order_id], detail=f"[{colour}]{state}[/] after {seconds:.1f} s")
            self._bars.stop_task(self._tasks[order_id])
        else:
            print(f"  {order_id}: {state} after {seconds:.1f} s", file=self.stream, flush=True)


class CountProgress:
    """A bar counting units (``update(text, completed=, total=)``) on a terminal; a plain line
    every HEARTBEAT_SECONDS otherwise. ``done(text)`` always prints the final line."""

    def __init__(self, label: str, *, stream: TextIO | None = None, live: bool | None = None,
                 heartbeat: float = HEARTBEAT_SECONDS) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.live = is_live(self.stream) if live is None else live
        self.heartbeat = heartbeat
        self.t0 = time.monotonic()
        self._last = 0.0
        self._text = ""
        self._bars: Progress | None = None
        self._task: Any = None

    def _start(self) -> Progress:
        if self._bars is None:
            self._bars = Progress(SpinnerColumn(), TextColumn(f"  {self.label}"), BarColumn(bar_width=30),
                                  MofNCompleteColumn(), TextColumn("{task.fields[text]}"), TimeElapsedColumn(),
                                  console=Console(file=self.stream), transient=True)
            self._task = self._bars.add_task(self.label, total=None, text="")
            self._bars.start()
        return self._bars

    def update(self, text: str, *, completed: int | None = None, total: int | None = None) -> None:
        now = time.monotonic()
        self._text = f"  {self.label}: {text}  [{now - self.t0:.0f} s]"
        if self.live:
            bars = self._start()
            fields: dict[str, Any] = {"text": text}
            if total is not None:
                fields["total"] = total
            if completed is not None:
                fields["completed"] = completed
            bars.update(self._task, **fields)
        elif now - self._last >= self.heartbeat:
            self._last = now
            print(self._text, file=self.stream, flush=True)

    def done(self, text: str | None = None) -> None:
        if text is not None:
            self._text = f"  {self.label}: {text}  [{time.monotonic() - self.t0:.0f} s]"
        if self._bars is not None:
            self._bars.stop()
            self._bars = None
        print(self._text, file=self.stream, flush=True)
