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
MOVED: dict[str, str] = {
    "orderpipe.stripe_reader": "orderpipe.stripe_api.reader",
    "orderpipe.stripe_normalise": "orderpipe.stripe_api.normalise",
    "orderpipe.stripe_standin": "orderpipe.stripe_api.standin",
    "orderpipe.invoice_doc": "orderpipe.invoicing.document",
    "orderpipe.invoice_pdf": "orderpipe.invoicing.pdf",
    "orderpipe.ubl": "orderpipe.invoicing.ubl",
    "orderpipe.seller": "orderpipe.invoicing.seller",
    "orderpipe.vat": "orderpipe.invoicing.vat",
    "orderpipe.eu_vat_rates": "orderpipe.invoicing.eu_vat_rates",
    "orderpipe.credit_note": "orderpipe.invoicing.credit_note",
    "orderpipe.connectors.invoicing_local": "orderpipe.invoicing.local",
    "orderpipe.connectors.netvisor": "orderpipe.invoicing.netvisor",
    "orderpipe.s10": "orderpipe.shipping.tracking_number",
    "orderpipe.label_pdf": "orderpipe.shipping.label",
    "orderpipe.connectors.shipping_local": "orderpipe.shipping.local",
    "orderpipe.connectors.postnord": "orderpipe.shipping.postnord",
    "orderpipe.email_i18n": "orderpipe.email.texts",
    "orderpipe.email_render": "orderpipe.email.render",
    "orderpipe.connectors.email_ledger": "orderpipe.email.ledger",
    "orderpipe.connectors.email_outbox": "orderpipe.email.outbox",
    "orderpipe.connectors.email_smtp": "orderpipe.email.smtp",
    "orderpipe.connectors.email_mailgun": "orderpipe.email.mailgun",
    "orderpipe.connectors.email_resend": "orderpipe.email.resend",
    "orderpipe.connectors.email_parts": "orderpipe.email.parts",
    "orderpipe.connectors.zoho_crm": "orderpipe.crm.zoho",
    "orderpipe.connectors.zoho_tokens": "orderpipe.crm.zoho_tokens",
    "orderpipe.connectors.crm_local": "orderpipe.crm.local",
    "orderpipe.connectors.production_log_local": "orderpipe.production_log.local",
    "orderpipe.connectors.airtable_log": "orderpipe.production_log.airtable",
    "orderpipe.alerts": "orderpipe.alerting.alerts",
    "orderpipe.connectors.alert_text": "orderpipe.alerting.text",
    "orderpipe.connectors.alerts_log": "orderpipe.alerting.log",
    "orderpipe.connectors.alerts_slack": "orderpipe.alerting.slack",
    "orderpipe.connectors.alerts_telegram": "orderpipe.alerting.telegram",
    "orderpipe.ledger": "orderpipe.orders.ledger",
    "orderpipe.dispatcher": "orderpipe.orders.dispatcher",
    "orderpipe.reconciliation": "orderpipe.orders.reconciliation",
    "orderpipe.wakeup": "orderpipe.orders.wakeup",
    "orderpipe.connectors.http": "orderpipe.connectors.vendor_http",
    "orderpipe.connectors.http_send": "orderpipe.connectors.vendor_http",
    "orderpipe.refund_ledger": "orderpipe.orders.refund_ledger",
    "orderpipe.credit_note_email": "orderpipe.email.credit_note",
}


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
