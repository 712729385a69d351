"""NetvisorInvoicing against the Netvisor stand-in (shared/docs/vendor-apis.md section 5)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree
from reportlab.pdfgen import canvas

from orderpipe.connectors.base import InvoiceResult
from orderpipe.errors import PermanentError, TransientError
from orderpipe.invoicing.netvisor import NetvisorInvoicing
from orderpipe.order import Address, Order, OrderLine
from orderpipe.settings import Settings, load_settings
from tests.standins.netvisor import CREDENTIALS, NetvisorStandIn
from tests.standins.wsgi_thread import Fault

ORDER_ID = "pi_3Netvisor1"


class FakeLocalInvoicing:
    """Same Protocol as the embedded invoicer: one fixed invoice, created once."""

    name = "local"

    def __init__(self, pdf_dir: Path, number: str = "20260001") -> None:
        self.number = number
        self.pdf = pdf_dir / f"{number}.pdf"
        self.calls = 0

    def create_invoice(self, order: Order) -> InvoiceResult:
        self.calls += 1
        created = not self.pdf.exists()
        if created:
            c = canvas.Canvas(str(self.pdf))
            c.drawString(72, 720, f"Invoice {self.number}")
            c.save()
        return InvoiceResult(invoice_number=self.number, issue_date="2026-05-10", currency=order.currency,
                             amount_total=order.amount_total, amount_tax=order.amount_tax, pdf_path=str(self.pdf),
                             created=created)

    def check(self) -> None:
        return None


def make_order() -> Order:
    address = Address(name="Äijä Öljynen", line1="Äyräpääntie 1", postal_code="00100", city="Helsinki",
                      country="FI")
    return Order(
        order_id=ORDER_ID, created=datetime(2026, 5, 10, 10, 0, tzinfo=UTC), currency="eur", amount_total=5390,
        amount_tax=400, amount_shipping=990, tax_from_stripe=True, customer_email="aija@example.fi",
        customer_name="Äijä Öljynen", billing_address=address, shipping_address=address,
        lines=[OrderLine(description="Muki – łódź", quantity=2, unit_amount=2000, amount_subtotal=4000,
                         amount_tax=400, amount_total=4400, tax_rate=Decimal("10"), product_id="prod_MUG"),
               OrderLine(description="Toimitus", quantity=1, amount_subtotal=990, amount_total=990,
                         amount_tax=0, tax_rate=None, is_shipping=True)],
    )


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
def local(tmp_path: Path) -> FakeLocalInvoicing:
    return FakeLocalInvoicing(tmp_path)


@pytest.fixture
def invoicing(settings: Settings, local: FakeLocalInvoicing) -> Iterator[NetvisorInvoicing]:
    connector = NetvisorInvoicing(settings, local, timeout=0.5)
    yield connector
    connector.close()


def test_books_local_invoice_in_netvisor_with_documented_request(
    invoicing: NetvisorInvoicing, standin: NetvisorStandIn, local: FakeLocalInvoicing
) -> None:
    result = invoicing.create_invoice(make_order())

    assert standin.auth_failures == []  # the stand-in recomputed and accepted every MAC
    lookup, add = standin.requests
    assert (lookup.method, lookup.path, lookup.query) == ("GET", "/salesinvoicelist.nv", {"InvoiceNumber": "20260001"})
    assert (add.method, add.path, add.query) == ("POST", "/salesinvoice.nv", {"method": "add"})
    for req in (lookup, add):
        h = req.headers
        assert h["x-netvisor-authentication-sender"] == CREDENTIALS["sender"]
        assert h["x-netvisor-authentication-customerid"] == CREDENTIALS["customer_id"]
        assert h["x-netvisor-authentication-partnerid"] == CREDENTIALS["partner_id"]
        assert h["x-netvisor-organisation-id"] == CREDENTIALS["organisation_id"]
        assert h["x-netvisor-authentication-machashcalculationalgorithm"] == "HMACSHA256"
        assert h["x-netvisor-interface-language"] == "EN"
        assert len(h["x-netvisor-authentication-mac"]) == 64
        assert len(h["x-netvisor-authentication-timestamp"]) == len("2025-05-10 07:00:00.000")
        assert CREDENTIALS["customer_key"] not in str(h) and CREDENTIALS["partner_key"] not in str(h)
    assert lookup.headers["x-netvisor-authentication-transactionid"] != add.headers[
        "x-netvisor-authentication-transactionid"]
    assert add.headers["content-type"] == "text/xml; charset=ISO-8859-15"
    assert add.body.startswith(b"<root><salesinvoice>")  # no XML declaration

    [stored] = standin.invoices
    inv = stored.root.find("salesinvoice")
    assert [el.tag for el in inv][:4] == ["salesinvoicenumber", "salesinvoicedate", "salesinvoiceduedate",
                                          "salesinvoiceamount"]
    assert inv.findtext("salesinvoicenumber") == "20260001"
    assert inv.find("salesinvoicedate").get("format") == "ansi" and inv.findtext("salesinvoicedate") == "2026-05-10"
    amount = inv.find("salesinvoiceamount")
    assert (amount.text, amount.get("iso4217currencycode")) == ("53,90", "EUR")
    assert inv.findtext("salesinvoiceourreference") == ORDER_ID
    assert inv.findtext("invoicingcustomeridentifier") == "ORDERPIPE"
    assert inv.findtext("invoicingcustomername") == "Äijä Öljynen"  # ISO-8859-15 on the wire, decoded right
    assert inv.findtext("invoicingcustomeraddressline") == "Äyräpääntie 1"
    assert inv.find("invoicingcustomercountrycode").get("type") == "ISO-3316"
    mug, ship = inv.findall("invoicelines/invoiceline/salesinvoiceproductline")
    assert mug.findtext("productname") == "Muki – łódź"  # outside ISO-8859-15: character references
    assert (mug.findtext("productunitprice"), mug.find("productunitprice").get("type")) == ("20,00", "net")
    assert (mug.findtext("productvatpercentage"), mug.find("productvatpercentage").get("vatcode")) == ("10", "KOMY")
    assert mug.findtext("salesinvoiceproductlinequantity") == "2"
    assert (ship.findtext("productidentifier"), ship.findtext("productunitprice")) == ("SHIPPING", "9,90")
    assert ship.find("productvatpercentage").get("vatcode") == "NONE"

    assert result.vendor_id == stored.key == "1800"
    assert result.invoice_number == "20260001" and result.pdf_path == str(local.pdf) and result.created is True


def test_repeat_after_a_crash_creates_nothing_twice(
    settings: Settings, local: FakeLocalInvoicing, standin: NetvisorStandIn
) -> None:
    first = NetvisorInvoicing(settings, local)
    created = first.create_invoice(make_order())
    first.close()  # Netvisor answered, the process died before the result was recorded

    second = NetvisorInvoicing(settings, local)
    again = second.create_invoice(make_order())
    second.close()

    assert len(standin.invoices_numbered("20260001")) == 1
    assert len(standin.calls("POST", "/salesinvoice.nv")) == 1
    assert again.vendor_id == created.vendor_id and again.created is False


def test_wrong_mac_is_rejected_in_band_and_permanent(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, local: FakeLocalInvoicing, standin: NetvisorStandIn
) -> None:
    monkeypatch.setenv("NETVISOR_PARTNER_KEY", "not-the-partner-key")
    connector = NetvisorInvoicing(load_settings(), local)
    with pytest.raises(PermanentError, match="FAILED: AUTHENTICATION_FAILED :: MAC does not match") as exc:
        connector.create_invoice(make_order())
    connector.close()
    assert "not-the-partner-key" not in str(exc.value)
    assert standin.invoices == [] and standin.auth_failures == ["MAC does not match"]


def test_429_then_success(invoicing: NetvisorInvoicing, standin: NetvisorStandIn) -> None:
    standin.inject(Fault(status=429, body="Too Many Requests", headers={"Retry-After": "2"}))
    with pytest.raises(TransientError) as exc:
        invoicing.create_invoice(make_order())
    assert exc.value.retry_after == 2
    assert invoicing.create_invoice(make_order()).vendor_id == "1800"
    assert len(standin.invoices) == 1


def test_5xx_then_success(invoicing: NetvisorInvoicing, standin: NetvisorStandIn) -> None:
    standin.inject(Fault(status=503, body="<html>Service Unavailable</html>", path_contains="/salesinvoice.nv"))
    with pytest.raises(TransientError, match="HTTP 503"):
        invoicing.create_invoice(make_order())
    assert invoicing.create_invoice(make_order()).vendor_id == "1800"
    assert len(standin.invoices) == 1


def test_timeout_after_netvisor_added_the_invoice_then_success(
    invoicing: NetvisorInvoicing, standin: NetvisorStandIn
) -> None:
    # Netvisor adds the invoice but the answer arrives after the client gave up.
    standin.inject(Fault(delay=1.5, then_process=True, path_contains="/salesinvoice.nv"))
    with pytest.raises(TransientError, match="timed out"):
        invoicing.create_invoice(make_order())
    result = invoicing.create_invoice(make_order())
    assert len(standin.invoices) == 1 and result.vendor_id == standin.invoices[0].key
    assert len(standin.calls("POST", "/salesinvoice.nv")) == 1  # found by the lookup, not added again


def test_failed_status_in_http_200_is_permanent_with_netvisors_message(
    invoicing: NetvisorInvoicing, standin: NetvisorStandIn
) -> None:
    standin.fail_next_add = ("INVALID_DATA", "Tuotetta ei löydy: prod_MUG")
    with pytest.raises(PermanentError, match=f"invoice 20260001 of order {ORDER_ID}.*INVALID_DATA :: Tuotetta ei"):
        invoicing.create_invoice(make_order())
    assert standin.invoices == []


def test_technical_error_is_transient(invoicing: NetvisorInvoicing, standin: NetvisorStandIn) -> None:
    standin.fail_next_add = ("TECHNICAL_ERROR", "try again later")
    with pytest.raises(TransientError, match="TECHNICAL_ERROR"):
        invoicing.create_invoice(make_order())
    assert invoicing.create_invoice(make_order()).vendor_id == "1800"


def test_unknown_customer_code_is_permanent(settings: Settings, local: FakeLocalInvoicing) -> None:
    connector = NetvisorInvoicing(settings, local, customer_code="NOPE")
    with pytest.raises(PermanentError, match="customer code NOPE not found"):
        connector.create_invoice(make_order())
    connector.close()


def test_check_reads_only(invoicing: NetvisorInvoicing, standin: NetvisorStandIn, local: FakeLocalInvoicing) -> None:
    invoicing.check()
    [req] = standin.requests
    assert (req.method, req.path) == ("GET", "/salesinvoicelist.nv") and "LastModifiedStart" in req.query
    assert standin.invoices == [] and standin.auth_failures == [] and local.calls == 0


def test_lookup_matches_the_exact_number(invoicing: NetvisorInvoicing, standin: NetvisorStandIn) -> None:
    assert invoicing.find_invoice("20260001") is None
    invoicing.create_invoice(make_order())
    assert invoicing.find_invoice("20260001") == "1800"
    root = etree.fromstring(standin.invoices[0].raw.decode("ISO-8859-15"))
    assert root.tag == "root"


def test_same_number_with_a_different_sum_is_not_taken_for_ours(
    invoicing: NetvisorInvoicing, standin: NetvisorStandIn
) -> None:
    invoicing.create_invoice(make_order())
    other = make_order().model_copy(update={"order_id": "pi_3Other", "amount_total": 1000})
    with pytest.raises(PermanentError, match="already has invoice 20260001 \\(key 1800\\) with sum 53,90, but "
                                             "order pi_3Other invoices 10,00"):
        invoicing.create_invoice(other)
    assert len(standin.invoices) == 1
