"""Netvisor gets the invoice's own VAT split, and a credit invoice matching the local credit note."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from orderpipe.invoicing.local import LocalInvoicing
from orderpipe.invoicing.netvisor import NetvisorInvoicing
from orderpipe.money import to_decimal
from orderpipe.settings import Settings, load_settings
from tests.standins.netvisor import CREDENTIALS, NetvisorStandIn
from tests.unit.invoice_samples import SELLER, Item, make_order


@pytest.fixture
def standin() -> Iterator[NetvisorStandIn]:
    with NetvisorStandIn() as s:
        yield s  # type: ignore[misc]


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, data_dir: Path, standin: NetvisorStandIn) -> Settings:
    env = {"ORDERPIPE_DATA_DIR": str(data_dir), "ORDERPIPE_INVOICING": "netvisor",
           "NETVISOR_API_BASE": standin.url, "NETVISOR_SENDER": CREDENTIALS["sender"],
           "NETVISOR_CUSTOMER_ID": CREDENTIALS["customer_id"], "NETVISOR_CUSTOMER_KEY": CREDENTIALS["customer_key"],
           "NETVISOR_PARTNER_ID": CREDENTIALS["partner_id"], "NETVISOR_PARTNER_KEY": CREDENTIALS["partner_key"],
           "NETVISOR_ORGANISATION_ID": CREDENTIALS["organisation_id"]}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


@pytest.fixture
def netvisor(settings: Settings, engine: Engine, data_dir: Path) -> Iterator[NetvisorInvoicing]:
    local = LocalInvoicing(engine, data_dir, SELLER, Decimal("25.5"), today=lambda: date(2026, 5, 4))
    connector = NetvisorInvoicing(settings, local, timeout=2)
    yield connector
    connector.close()


def comma(minor: int, currency: str = "eur") -> str:
    return format(to_decimal(minor, currency), "f").replace(".", ",")


def test_three_lines_at_one_euro_book_the_invoice_vat_not_a_per_line_rounding(
    netvisor: NetvisorInvoicing, standin: NetvisorStandIn
) -> None:
    order = make_order([Item(f"Kortti {i}", 100, 1, None) for i in range(3)], tax_from_stripe=False,
                       order_id="pi_nv_three")
    result = netvisor.create_invoice(order)
    assert result.amount_tax == 61  # 3.00 incl. 25.5 %: net 2.39, VAT 0.61 for the rate
    [stored] = standin.invoices
    lines = stored.root.findall("salesinvoice/invoicelines/invoiceline/salesinvoiceproductline")
    vat_sums = [Decimal(ln.findtext("salesinvoiceproductlinevatsum").replace(",", ".")) for ln in lines]
    assert sum(vat_sums) == Decimal("0.61")  # per-line rounding would give 0.60
    assert [comma(v.tax) for v in result.vat_lines] == [ln.findtext("salesinvoiceproductlinevatsum") for ln in lines]


def test_credit_invoice_matches_the_credit_note(netvisor: NetvisorInvoicing, standin: NetvisorStandIn) -> None:
    order = make_order([Item("Kirja", 3490, 1, None), Item("Juliste", 1990, 3, None)], tax_from_stripe=False,
                       order_id="pi_nv_refund")
    invoice = netvisor.create_invoice(order)
    cn = netvisor.issue_credit_note(order.order_id, "re_nv_1", 3000, language="fi", order=order)
    assert cn.number == "CN-2026-000001" and cn.invoice_number == invoice.invoice_number and cn.created
    assert cn.amount_total == 3000 and sum(p.taxable + p.tax for p in cn.vat_breakdown) == 3000

    inv_row, cn_row = standin.invoices
    credit = cn_row.root.find("salesinvoice")
    assert credit.findtext("salesinvoicenumber") == "CN-2026-000001"
    assert credit.findtext("salesinvoiceamount") == "-30,00"
    lines = credit.findall("invoicelines/invoiceline/salesinvoiceproductline")
    assert [(ln.findtext("salesinvoiceproductlinequantity"), ln.findtext("productunitprice"),
             ln.findtext("salesinvoiceproductlinevatsum")) for ln in lines] == [
        ("-1", comma(p.taxable), "-" + comma(p.tax)) for p in cn.vat_breakdown]
    assert standin.matches == [(cn_row.key, inv_row.key)] and cn.vendor_id == cn_row.key

    # a replay of the refund books nothing twice
    again = netvisor.issue_credit_note(order.order_id, "re_nv_1", 3000, language="fi", order=order)
    assert again.number == cn.number and not again.created and len(standin.invoices) == 2
