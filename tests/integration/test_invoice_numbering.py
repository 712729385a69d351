"""Gapless, increasing invoice numbers under concurrent orders, on SQLite and on Postgres."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from orderpipe.connectors.base import InvoiceResult
from orderpipe.db import get_engine
from orderpipe.errors import OrderDataError, StepError
from orderpipe.invoicing.local import LocalInvoicing
from orderpipe.tables import Invoice, InvoiceCounter
from tests.unit.invoice_samples import SELLER, consumer_fi

ISSUED = date(2026, 5, 4)


def invoicing(engine: Engine, data_dir: Path) -> LocalInvoicing:
    return LocalInvoicing(engine, data_dir, SELLER, Decimal("25.5"), today=lambda: ISSUED)


def run_concurrently(n: int, target: Callable[[int], object]) -> list[object]:
    results: list[object] = [None] * n
    barrier = threading.Barrier(n)

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target(i)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    return results


def count_invoices(engine: Engine) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(Invoice)).one()


def test_concurrent_orders_get_numbers_1_to_20(any_db_url: str, data_dir: Path) -> None:
    engine = get_engine(any_db_url)
    inv = invoicing(engine, data_dir)
    base = consumer_fi()

    results = run_concurrently(20, lambda i: inv.create_invoice(base.model_copy(update={"order_id": f"pi_conc_{i}"})))

    numbers = sorted(r.invoice_number for r in results if isinstance(r, InvoiceResult))
    assert numbers == [f"2026-{seq:06d}" for seq in range(1, 21)]
    assert all(isinstance(r, InvoiceResult) and r.created for r in results)
    assert count_invoices(engine) == 20
    with Session(engine) as s:
        counter = s.exec(select(InvoiceCounter)).one()
        assert (counter.seller_id, counter.year, counter.last_seq) == ("FI12345671", 2026, 20)
        rows = s.exec(select(Invoice)).all()
        assert sorted(r.seq for r in rows) == list(range(1, 21))
    for r in results:
        assert isinstance(r, InvoiceResult)
        assert Path(r.pdf_path).read_bytes().startswith(b"%PDF-")
        assert r.xml_path and Path(r.xml_path).name == f"{r.invoice_number}.xml"
        assert Path(r.pdf_path) == data_dir / "invoices" / f"{r.invoice_number}.pdf"
        assert r.amount_total == base.amount_total and r.amount_tax == base.amount_tax
    assert not [p for p in (data_dir / "invoices").iterdir() if p.name.startswith(".")], "no temp files left"


def test_same_order_twice_and_concurrently_is_one_invoice(any_db_url: str, data_dir: Path) -> None:
    engine = get_engine(any_db_url)
    inv = invoicing(engine, data_dir)
    order = consumer_fi().model_copy(update={"order_id": "pi_twice"})

    first = inv.create_invoice(order)
    again = inv.create_invoice(order)
    assert first.created and not again.created
    assert again.invoice_number == first.invoice_number == "2026-000001"
    assert again.issue_date == first.issue_date == "2026-05-04"

    racing = consumer_fi().model_copy(update={"order_id": "pi_race"})
    results = run_concurrently(8, lambda _i: inv.create_invoice(racing))
    assert {r.invoice_number for r in results if isinstance(r, InvoiceResult)} == {"2026-000002"}
    assert sum(1 for r in results if isinstance(r, InvoiceResult) and r.created) == 1
    assert count_invoices(engine) == 2

    nxt = inv.create_invoice(consumer_fi().model_copy(update={"order_id": "pi_next"}))
    assert nxt.invoice_number == "2026-000003", "no number was burnt by the repeats"


def test_missing_files_are_rendered_again(engine: Engine, data_dir: Path) -> None:
    inv = invoicing(engine, data_dir)
    order = consumer_fi()
    first = inv.create_invoice(order)
    Path(first.pdf_path).unlink()
    assert first.xml_path
    xml_before = Path(first.xml_path).read_bytes()
    again = inv.create_invoice(order)
    assert not again.created
    assert Path(again.pdf_path).read_bytes().startswith(b"%PDF-")
    assert Path(first.xml_path).read_bytes() == xml_before


def test_a_new_year_starts_a_new_series(engine: Engine, data_dir: Path) -> None:
    inv = invoicing(engine, data_dir)
    inv.create_invoice(consumer_fi().model_copy(update={"order_id": "pi_old"}))
    later = LocalInvoicing(engine, data_dir, SELLER, Decimal("25.5"), today=lambda: date(2027, 1, 1))
    assert later.create_invoice(consumer_fi().model_copy(update={"order_id": "pi_new"})).invoice_number == "2027-000001"


def test_an_order_that_cannot_be_invoiced_takes_no_number(engine: Engine, data_dir: Path) -> None:
    inv = invoicing(engine, data_dir)
    bad = consumer_fi().model_copy(update={"order_id": "pi_bad", "amount_total": 1})
    with pytest.raises(OrderDataError, match="pi_bad"):
        inv.create_invoice(bad)
    assert inv.create_invoice(consumer_fi()).invoice_number == "2026-000001"


def test_check_needs_a_writable_data_dir(engine: Engine, data_dir: Path) -> None:
    invoicing(engine, data_dir).check()
    assert (data_dir / "invoices").is_dir()
    blocker = data_dir / "blocked"
    blocker.write_text("a file, not a directory")
    with pytest.raises(StepError, match="local invoicing"):
        invoicing(engine, blocker).check()


# ---- render before numbering, series per seller, credit notes ------------------------------------


def test_a_layout_failure_is_permanent_and_uses_no_number(engine: Engine, data_dir: Path) -> None:
    from orderpipe.errors import PermanentError
    from tests.unit.invoice_samples import FI_RATE, Item, make_order

    inv = invoicing(engine, data_dir)
    too_long = make_order([Item("x" * 60_000, 100, 1, FI_RATE)], order_id="pi_layout")
    with pytest.raises(PermanentError, match="pi_layout.*cannot be laid out.*no invoice number was used"):
        inv.create_invoice(too_long)
    assert count_invoices(engine) == 0
    assert inv.create_invoice(consumer_fi()).invoice_number == "2026-000001"
    assert not list((data_dir / "invoices").glob("*999999*"))  # the placeholder never reaches the store


def test_series_per_seller_vat_id(engine: Engine, data_dir: Path) -> None:
    old = invoicing(engine, data_dir)
    new = LocalInvoicing(engine, data_dir / "new", SELLER.model_copy(update={"vat_id": "FI02011527"}),
                         Decimal("25.5"), today=lambda: ISSUED)
    a = old.create_invoice(consumer_fi().model_copy(update={"order_id": "pi_old_1"}))
    b = new.create_invoice(consumer_fi().model_copy(update={"order_id": "pi_new_1"}))
    c = old.create_invoice(consumer_fi().model_copy(update={"order_id": "pi_old_2"}))
    assert (a.invoice_number, b.invoice_number, c.invoice_number) == ("2026-000001", "2026-000001", "2026-000002")


def test_credit_notes_have_their_own_gapless_series_and_files(engine: Engine, data_dir: Path) -> None:
    from orderpipe.invoicing.credit_note import RefundExceedsInvoice
    from orderpipe.invoicing.local import NotInvoicedYet
    from tests.en16931 import load_fatal_rules

    inv = invoicing(engine, data_dir)
    order = consumer_fi()
    with pytest.raises(NotInvoicedYet):
        inv.issue_credit_note(order.order_id, "re_early", 100)
    invoice = inv.create_invoice(order)
    first = inv.issue_credit_note(order.order_id, "re_1", 1000, language="fi")
    repeat = inv.issue_credit_note(order.order_id, "re_1", 1000, language="fi")
    second = inv.issue_credit_note(order.order_id, "re_2", invoice.amount_total - 1000)
    assert (first.number, second.number) == ("CN-2026-000001", "CN-2026-000002")
    assert repeat.number == first.number and not repeat.created and first.created
    assert first.invoice_number == invoice.invoice_number
    assert first.amount_tax + second.amount_tax == invoice.amount_tax
    with pytest.raises(RefundExceedsInvoice, match="left to refund"):
        inv.issue_credit_note(order.order_id, "re_3", 1)
    assert [r.number for r in inv.credit_notes(order.order_id)] == ["CN-2026-000001", "CN-2026-000002"]
    rules = load_fatal_rules()
    for cn in (first, second):
        assert Path(cn.pdf_path or "").read_bytes().startswith(b"%PDF")
        assert rules(Path(cn.xml_path or "")) == []
    # the invoice series is untouched by credit notes
    assert inv.create_invoice(order.model_copy(update={"order_id": "pi_after"})).invoice_number == "2026-000002"
