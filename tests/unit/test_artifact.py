"""The order artifact: names and descriptions from Stripe are shown as text, never as markdown."""

from __future__ import annotations

from datetime import UTC, datetime

from markdown_it import MarkdownIt

from orderpipe.artifact import order_markdown
from orderpipe.connectors.base import ShipmentResult, StoredFile
from orderpipe.order import Address, Order, OrderLine

NAME = "Anna ![pixel](https://evil.example/p.png) [pay here](https://evil.example) <script>x</script>"
DESCRIPTION = "Mug | 0 | 0.00 EUR |\n| **free** | line *2* `code`"


def render(order: Order, **kw: object) -> str:
    steps = {"fetch_order": "completed", "shipment": "failed"}
    markdown = order_markdown(order, steps=steps, crm=None, shipment=kw.get("shipment"),  # type: ignore[arg-type]
                              invoice=None, email=None, errors={"shipment": "PostNord said: [x](http://e) | y"})
    return MarkdownIt("commonmark").enable("table").render(markdown)


def order() -> Order:
    return Order(order_id="pi_3Md1", created=datetime(2026, 5, 10, tzinfo=UTC), currency="eur", amount_total=4400,
                 customer_email="anna@example.fi", customer_name=NAME,
                 shipping_address=Address(name=NAME, line1="Katu 1", postal_code="00100", city="Helsinki",
                                          country="FI"),
                 lines=[OrderLine(description=DESCRIPTION, quantity=2, amount_subtotal=4000, amount_total=4400,
                                  amount_tax=400)])


def test_names_descriptions_and_errors_are_escaped() -> None:
    html = render(order())
    assert "<img" not in html and "<a " not in html and "<script>" not in html and "<strong>free" not in html
    assert "![pixel](https://evil.example/p.png)" in html.replace("&quot;", '"')  # shown as the text it is
    # the line table keeps its three columns: the description's pipes do not open new cells
    body = html.split("<tbody>")[1].split("</tbody>")[0]
    first_row = body.split("</tr>")[0]
    assert first_row.count("<td") == 3 and "Mug | 0 | 0.00 EUR |" in first_row


def test_a_tracking_link_only_for_an_http_url() -> None:
    label = StoredFile(key="labels/pi_3Md1.pdf", path="/data/labels/pi_3Md1.pdf")
    ok = ShipmentResult(tracking_number="0037", carrier="postnord", tracking_url="https://t.example/?id=0037",
                        label=label, created=True)
    assert '<a href="https://t.example/?id=0037">track</a>' in render(order(), shipment=ok)
    bad = ok.model_copy(update={"tracking_url": "javascript:alert(1)"})
    assert "javascript:" not in render(order(), shipment=bad)


def test_a_vat_note_of_the_invoice_is_on_the_artifact() -> None:
    from orderpipe.connectors.base import InvoiceResult

    invoice = InvoiceResult(invoice_number="2026-000007", issue_date="2026-05-10", currency="eur", amount_total=4400,
                            amount_tax=400, created=True,
                            vat_notes=["buyer VAT id DE123456788 failed its check digit: taxed as a consumer"])
    markdown = order_markdown(order(), steps={}, crm=None, shipment=None, invoice=invoice, email=None, errors={})
    assert "DE123456788 failed its check digit: taxed as a consumer" in markdown
