"""Load the official EN 16931 validator that lies in shared/ beside the repo."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import SHARED

VALIDATOR_DIR = SHARED / "validators" / "en16931"


def load_fatal_rules() -> Callable[[Path], list[tuple[str, str]]]:
    if not (VALIDATOR_DIR / "validate_ubl.py").exists():
        pytest.fail(f"the EN 16931 validator is missing: expected {VALIDATOR_DIR}/validate_ubl.py")
    sys.path.insert(0, str(VALIDATOR_DIR))
    try:
        from validate_ubl import fatal_rules as rules
    finally:
        sys.path.remove(str(VALIDATOR_DIR))
    return rules  # type: ignore[no-any-return]
