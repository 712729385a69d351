"""Fonts for every PDF orderpipe renders.

DejaVu Sans ships in the package (orderpipe/fonts, with its licence), so names such as
"Åsa Öberg-Ståhl", Polish, Czech, Greek or Cyrillic render as themselves. Characters the
font lacks (CJK, for example) are replaced by "?" via :func:`printable`, so another script
never crashes a step.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

FONT_DIR = Path(__file__).with_name("fonts")
REGULAR = "DejaVuSans"
BOLD = "DejaVuSans-Bold"


P = ParamSpec("P")
R = TypeVar("R")
# reportlab keeps per-document glyph subsets inside the shared TTFont objects (a
# WeakKeyDictionary mutated while text is laid out): two PDFs rendered at once in two
# threads of one process (an order's label and invoice steps run concurrently) corrupted
# it once in 120 orders (KeyError: 106 from the invoice step). One PDF at a time per process.
_RENDER_LOCK = threading.Lock()


def one_at_a_time(render: Callable[P, R]) -> Callable[P, R]:
    """Decorator for every function that renders a PDF with these fonts."""

    @functools.wraps(render)
    def locked(*args: P.args, **kwargs: P.kwargs) -> R:
        with _RENDER_LOCK:
            return render(*args, **kwargs)

    return locked


@functools.cache
def register() -> tuple[str, str]:
    """Register the fonts with reportlab once per process; returns (regular, bold) names."""
    pdfmetrics.registerFont(TTFont(REGULAR, str(FONT_DIR / "DejaVuSans.ttf")))
    pdfmetrics.registerFont(TTFont(BOLD, str(FONT_DIR / "DejaVuSans-Bold.ttf")))
    return REGULAR, BOLD


@functools.cache
def _covered() -> frozenset[int]:
    register()
    font = pdfmetrics.getFont(REGULAR)
    return frozenset(font.face.charToGlyph.keys())  # type: ignore[attr-defined]


def printable(text: str | None) -> str:
    """The text with every character the font cannot draw replaced by '?'."""
    if not text:
        return ""
    covered = _covered()
    return "".join(ch if (ord(ch) in covered or ch in "\n\t") else "?" for ch in text)
