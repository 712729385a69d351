"""Load the official EN 16931 validator and OpenPeppol's BIS 3.0 validator that lie in shared/ beside the repo.

Each validator compiles its stylesheet once per process (the first call, about 0.5 s) and
keeps it: a test module that validates many documents pays that once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import SHARED

VALIDATOR_DIR = SHARED / "validators" / "en16931"
PEPPOL_VALIDATOR_DIR = SHARED / "validators" / "peppol-bis3"

Rules = Callable[[Path], list[tuple[str, str]]]


def _load(directory: Path, module: str, what: str) -> Rules:
    if not (directory / f"{module}.py").exists():
        pytest.fail(f"the {what} validator is missing: expected {directory}/{module}.py")
    sys.path.insert(0, str(directory))
    try:
        rules = __import__(module).fatal_rules
    finally:
        sys.path.remove(str(directory))
    return rules  # type: ignore[no-any-return]


def load_fatal_rules() -> Rules:
    return _load(VALIDATOR_DIR, "validate_ubl", "EN 16931")


def load_peppol_fatal_rules() -> Rules:
    return _load(PEPPOL_VALIDATOR_DIR, "validate_peppol", "Peppol BIS 3.0")
