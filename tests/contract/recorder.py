"""A callable list: pass it where a connector wants ``sleep`` or ``throttle`` and read what it was called with."""

from __future__ import annotations


class Recorder(list[object]):
    def __call__(self, value: object) -> None:
        self.append(value)
