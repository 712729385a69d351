"""Old module paths of code that moved into the domain packages, kept importable.

Cached step results are pickled with their classes' module paths and kept 90 days, and
branches written before the move still import the old paths. Each old name in ``MOVED``
resolves to the new module itself (``orderpipe.invoice_doc is orderpipe.invoicing.document``),
so unpickling, ``isinstance`` and monkeypatching behave exactly as before; a moved package's
submodules follow it (``orderpipe.stripe_standin.samples``). ``python -m <old name>`` runs too.

No file is left at an old path, on purpose: git then records each move as a rename, and a
merge carries edits made to the old file (on another branch) into the new one.

Installed first on ``sys.meta_path`` by ``orderpipe/__init__.py``; it imports nothing until
an old name is imported. New code imports the new paths.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from importlib.machinery import ModuleSpec
from types import CodeType, ModuleType

#: old module path -> new module path (a package's submodules follow it).
MOVED: dict[str, str] = {}


def new_name(old: str) -> str | None:
    """The module an old path now is, or None if ``old`` did not move."""
    parts = old.split(".")
    for n in range(len(parts), 1, -1):
        head = ".".join(parts[:n])
        if head in MOVED:
            return ".".join([MOVED[head], *parts[n:]])
    return None


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old name and loads it as the new module object (no copy, no second import)."""

    def __init__(self) -> None:
        self._own_specs: dict[str, ModuleSpec | None] = {}

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> ModuleSpec | None:
        if not fullname.startswith("orderpipe."):
            return None
        moved_to = new_name(fullname)
        if moved_to is None:
            return None
        real = importlib.util.find_spec(moved_to)
        if real is None:
            return None
        spec = ModuleSpec(fullname, self, is_package=real.submodule_search_locations is not None)
        spec.loader_state = moved_to
        return spec

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        module = importlib.import_module(spec.loader_state)
        self._own_specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The import system has just set __spec__ to the old name's spec: give the module its own back.
        assert module.__spec__ is not None
        module.__spec__ = self._own_specs.pop(module.__spec__.name)

    def get_code(self, fullname: str) -> CodeType | None:
        """For ``python -m <old name>`` (runpy asks the loader for the code)."""
        moved_to = new_name(fullname)
        real = importlib.util.find_spec(moved_to) if moved_to else None
        if real is None or real.loader is None:
            raise ImportError(f"no module {moved_to!r} (moved from {fullname!r})")
        return real.loader.get_code(moved_to)  # type: ignore[attr-defined]


def install() -> None:
    if not any(isinstance(f, MovedModules) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedModules())
