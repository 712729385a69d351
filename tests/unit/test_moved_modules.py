"""Every module path from before the domain packages still imports, as the new module itself.

Cached step results (pickled with their classes' module paths, kept 90 days) and branches
written before the move depend on it: see orderpipe/_moved.py.
"""

from __future__ import annotations

import importlib
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from orderpipe._moved import MOVED, new_name

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_path_is_the_new_module(old: str) -> None:
    module = importlib.import_module(old)
    assert module is importlib.import_module(MOVED[old])
    assert sys.modules[old] is module
    assert module.__name__ == MOVED[old]
    assert module.__spec__ is not None and module.__spec__.name == MOVED[old]  # its own spec, not the alias's
    assert not (REPO / Path(*old.split("."))).with_suffix(".py").exists()  # no file left: git sees a rename


def test_old_names_import_the_same_classes_and_functions() -> None:
    from orderpipe.connectors.http import call
    from orderpipe.connectors.http_send import RateLimited
    from orderpipe.connectors.invoicing_local import LocalInvoicing
    from orderpipe.connectors.postnord import PostNordShipping
    from orderpipe.invoice_doc import InvoiceDocument
    from orderpipe.invoicing.document import InvoiceDocument as NewInvoiceDocument
    from orderpipe.invoicing.local import LocalInvoicing as NewLocalInvoicing
    from orderpipe.refund_ledger import payment_summary
    from orderpipe.shipping.postnord import PostNordShipping as NewPostNordShipping
    from orderpipe.stripe_standin import StandinStore
    from orderpipe.stripe_standin.samples import sample_orders

    assert InvoiceDocument is NewInvoiceDocument
    assert LocalInvoicing is NewLocalInvoicing
    assert PostNordShipping is NewPostNordShipping
    assert StandinStore is importlib.import_module("orderpipe.stripe_api.standin").StandinStore
    assert sample_orders is importlib.import_module("orderpipe.stripe_api.standin.samples").sample_orders
    assert payment_summary.__module__ == "orderpipe.orders.refund_ledger"
    assert call.__module__ == RateLimited.__module__ == "orderpipe.connectors.vendor_http"


def test_from_package_import_gives_the_moved_module() -> None:
    from orderpipe import alerts, dispatcher, ledger
    from orderpipe.connectors import email_outbox

    assert ledger is importlib.import_module("orderpipe.orders.ledger")
    assert alerts is importlib.import_module("orderpipe.alerting.alerts")
    assert dispatcher.Dispatcher.__module__ == "orderpipe.orders.dispatcher"
    assert email_outbox.OutboxEmail.__module__ == "orderpipe.email.outbox"


def test_monkeypatching_the_old_path_patches_the_new_module(monkeypatch: pytest.MonkeyPatch) -> None:
    import orderpipe.orders.dispatcher as new

    monkeypatch.setattr("orderpipe.dispatcher.ALERT_AFTER", 42)
    assert new.ALERT_AFTER == 42


def test_no_new_path_is_itself_an_old_one() -> None:
    assert [new for new in MOVED.values() if new_name(new) is not None] == []


def test_unknown_names_still_fail() -> None:
    assert new_name("orderpipe.nothing_here") is None
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("orderpipe.stripe_standin.nothing_here")


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_pickle_made_with_an_old_class_path_loads_in_a_fresh_process() -> None:
    """A result cached before the move names e.g. ``orderpipe.invoice_doc.InvoiceParty``."""
    from orderpipe.connectors.base import ShipmentResult, StoredFile
    from orderpipe.invoicing.document import InvoiceParty

    party = InvoiceParty(name="Aino Virtanen", street="Mannerheimintie 1", postcode="00100", city="Helsinki",
                         country="FI")
    InvoiceParty.__module__ = "orderpipe.invoice_doc"  # pickle it as a process before the move did
    try:
        blob = pickle.dumps(party)
    finally:
        InvoiceParty.__module__ = "orderpipe.invoicing.document"
    assert b"orderpipe.invoice_doc" in blob and b"orderpipe.invoicing" not in blob
    shipment = ShipmentResult(carrier="local", tracking_number="RR123456785FI", tracking_url="https://t/x",
                              label=StoredFile(key="labels/pi_1.pdf"), created=True)
    code = (
        "import pickle, sys\n"
        f"party = pickle.loads({blob!r})\n"
        f"shipment = pickle.loads({pickle.dumps(shipment)!r})\n"
        "print(type(party).__module__, party.city, type(shipment).__name__, shipment.tracking_number)\n"
    )
    assert _run(code) == "orderpipe.invoicing.document Helsinki ShipmentResult RR123456785FI"


def test_python_dash_m_with_the_old_package_name_runs_its_main() -> None:
    out = subprocess.run([sys.executable, "-m", "orderpipe.stripe_standin", "--help"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "stand-in" in out.stdout.lower() or "--port" in out.stdout


def test_domain_packages_do_not_shadow_the_sdk_or_the_standard_library() -> None:
    """``orderpipe/email/`` next to stdlib ``email``: absolute imports keep them apart."""
    code = (
        "import orderpipe.email.render, orderpipe.stripe_api.reader, email.message, stripe\n"
        "print(email.__name__, email.message.__name__, stripe.__name__, hasattr(stripe, 'PaymentIntent'))\n"
    )
    assert _run(code) == "email email.message stripe True"


def test_package_inits_are_light() -> None:
    """Importing a domain package imports none of its modules (start-up time)."""
    code = (
        "import sys\n"
        "import orderpipe.invoicing, orderpipe.shipping, orderpipe.email, orderpipe.crm, orderpipe.alerting\n"
        "import orderpipe.production_log, orderpipe.orders, orderpipe.stripe_api\n"
        "print(sorted(m for m in sys.modules if m.startswith('orderpipe.') and m.count('.') > 1))\n"
    )
    assert _run(code) == "[]"
