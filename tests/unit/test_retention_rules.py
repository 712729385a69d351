"""The rules `purge` and `forget` apply outside the database (no I/O): which S3 keys are labels
(never an invoice, whatever the prefixes), and what an artifact keeps once the customer is out."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from orderpipe.artifact import (
    StepTiming,
    erasure_note,
    md,
    order_markdown,
    order_status_markdown,
    redact_artifact_data,
    redaction_forms,
    steps_table,
)
from orderpipe.connectors.base import CrmResult, InvoiceResult, ShipmentResult, StoredFile
from orderpipe.connectors.file_store_s3 import is_invoice_key, is_label_key
from orderpipe.email.smtp import _refusal
from orderpipe.order import Address, Order, OrderLine
from orderpipe.states import Step

ORDER_ID = "pi_3RetentionRule0001"
NAME, EMAIL, COMPANY, VAT_ID = "Aino O'Brien-Virtanen", "aino.virtanen@example.fi", "Kahvila (Aino) Oy", "FI12345678"
NOTE = erasure_note("forget", datetime(2027, 1, 2, tzinfo=UTC))

ORDER = Order(order_id=ORDER_ID, created=datetime(2026, 11, 23, tzinfo=UTC), currency="eur", amount_total=4990,
              customer_email=EMAIL, business_name=COMPANY, buyer_vat_id=VAT_ID, locale="fi",
              shipping_address=Address(name=NAME, line1="Katu 1 B 12", postal_code="00100", city="Helsinki",
                                       country="FI"),
              lines=[OrderLine(description="Mug", quantity=1, amount_subtotal=4990, amount_total=4990)])
INVOICED = InvoiceResult(invoice_number="2026-000200", issue_date="2026-11-23", currency="eur", amount_total=4990,
                         amount_tax=966, pdf_key="invoices/2026-000200.pdf", created=True,
                         vat_notes=[f"Buyer VAT id {VAT_ID!r} fails its check digit: the buyer is treated as a "
                                    "consumer."])
SHIPPED = ShipmentResult(tracking_number="RR000000200FI", carrier="local", tracking_url="https://t.example/RR",
                         label=StoredFile(key=f"labels/{ORDER_ID}.pdf"), created=True)


def personal(text: str) -> list[str]:
    """Which of the customer's values (raw or as md() escapes them) are still in ``text``."""
    forms = [NAME, md(NAME), EMAIL, md(EMAIL), COMPANY, md(COMPANY), VAT_ID, "Katu 1 B 12"]
    return [f for f in forms if f.lower() in text.lower()]


@pytest.mark.parametrize(("labels", "invoices"), [
    ("labels/", "invoices/"), ("shop/", "shop/"), ("", ""), ("shop/", "shop/invoices/"), ("shop/labels/", "shop/"),
    ("shop-", "shop-inv-"), ("x/", "x/pi_"),
])
def test_a_label_key_is_never_an_invoice_key_whatever_the_prefixes(labels: str, invoices: str) -> None:
    for name in ("2026-000001.pdf", "2026-000001.xml", "CN-2026-000001.pdf", "CN-2026-000001.xml"):
        invoice = f"{invoices}{name}"
        assert is_invoice_key(invoice, invoices)
        assert not is_label_key(invoice, labels, invoices), invoice
    assert is_label_key(f"{labels}pi_3Abc_def-1.pdf", labels, invoices)
    assert not is_invoice_key(f"{labels}pi_3Abc.pdf", invoices)
    for other in (f"{labels}pi_3Abc.xml", f"{labels}notes.pdf", f"{labels}sub/pi_3Abc.pdf", "prefect-results/pi_x.pdf"):
        assert not is_label_key(other, labels, invoices), other


def test_the_summary_loses_the_customer_and_keeps_the_order() -> None:
    summary = order_markdown(ORDER, steps={s: "completed" for s in Step}, crm=CrmResult(contact_id="7", deal_id="d-7",
                             created=True), shipment=SHIPPED, invoice=INVOICED, email=None,
                             errors={"email": f"order {ORDER_ID} has an invalid customer email {EMAIL!r}"})
    assert len(personal(summary)) >= 4  # the fixture means something: the escaped forms are there

    forms = redaction_forms([NAME, EMAIL, COMPANY, VAT_ID, "Katu 1 B 12", "FI", None, " "])
    redacted = str(redact_artifact_data(summary, forms, NOTE))

    assert personal(redacted) == []
    assert "**Customer:** (erased by orderpipe forget on 2027-01-02)\n" in redacted
    for kept in (f"# Order `{ORDER_ID}`", "**Invoice:** 2026-000200", "RR000000200FI", "**Country:** FI",
                 "| Mug | 1 | 49.90 EUR |", "**CRM deal:** d-7", "Buyer VAT id (erased)"):
        assert kept in redacted, kept
    assert redact_artifact_data(redacted, forms, erasure_note("purge", datetime(2028, 1, 1, tzinfo=UTC))) == redacted


def test_without_the_values_the_patterns_still_take_the_customer_out() -> None:
    """A re-run after the database was erased may know none of the values."""
    summary = order_markdown(ORDER, steps={}, crm=None, shipment=SHIPPED, invoice=INVOICED, email=None, errors={})
    row = SimpleNamespace(order_id=ORDER_ID, customer_email=EMAIL, country="FI", currency="eur", amount_total=4990,
                          state="completed", tracking_number="RR000000200FI", invoice_number="2026-000200")
    status = order_status_markdown(row, {"email": "completed"}, {"payment_status": "refunded",
                                                                  "refunded_amount": 4990, "credit_notes": []})
    assert personal(str(redact_artifact_data(summary, [], NOTE))) == []
    redacted = str(redact_artifact_data(status, [], NOTE))
    assert personal(redacted) == [] and "**Invoice:** 2026\\-000200" in redacted
    assert f"**Customer:** {NOTE} · **Country:** FI · **Currency:** EUR" in redacted


def test_a_steps_table_is_redacted_as_its_json_rows() -> None:
    timings = [StepTiming(step=Step.CRM, submitted=datetime(2026, 11, 23, tzinfo=UTC), state_name="Completed",
                          outcome="deal d-7 for contact 7"),
               StepTiming(step=Step.EMAIL, submitted=datetime(2026, 11, 23, tzinfo=UTC), state_name="Completed",
                          outcome=f"confirmation sent to {EMAIL} in language fi via outbox, message id <m@x>"),
               StepTiming(step=Step.SHIPMENT, submitted=datetime(2026, 11, 23, tzinfo=UTC), state_name="Failed",
                          error="no shipping address for Väinö Ääkkönen")]
    data = json.dumps(steps_table(timings))  # what Prefect stores: \u escapes for ä and ö
    assert "Väinö" not in data and EMAIL in data

    redacted = redact_artifact_data(data, redaction_forms(["Väinö Ääkkönen"]), NOTE)
    assert isinstance(redacted, str)
    rows = {r["step"]: r["outcome"] for r in json.loads(redacted)}
    assert rows["email"] == "confirmation sent to the customer in language fi via outbox, message id <m@x>"
    assert rows["shipment"] == "failed: no shipping address for (erased)"
    assert rows["crm"] == "deal d-7 for contact 7"
    clean = json.dumps(steps_table(timings[:1]))
    assert redact_artifact_data(clean, redaction_forms([NAME]), NOTE) is clean  # unchanged: not re-encoded


def test_whole_values_only() -> None:
    """A short or numeric value never erases part of an order id or an invoice number."""
    text = f"**Invoice:** 2026-000200 · order {ORDER_ID} · Aino"
    assert redact_artifact_data(text, redaction_forms(["2026", "000200", "Retention", "Aino"]), NOTE) == (
        f"**Invoice:** 2026-000200 · order {ORDER_ID} · (erased)")


def test_an_smtp_refusal_does_not_quote_the_address() -> None:
    text = _refusal("aino@example.fi", 550, b"5.1.1 <aino@example.fi>: Recipient address rejected")
    assert text == "550 5.1.1 <recipient>: Recipient address rejected"


def test_the_artifacts_client_pages_retries_and_authenticates_like_prefect() -> None:
    """PrefectArtifacts over httpx.MockTransport: every page until an empty one, a 503 tried
    again, Basic auth (PREFECT_API_AUTH_STRING) before Bearer (PREFECT_API_KEY)."""
    import httpx

    from orderpipe.errors import PermanentError, TransientError
    from orderpipe.prefect_artifacts import PrefectArtifacts, auth_headers
    from orderpipe.settings import Settings

    stored = [{"id": f"id-{i}", "key": "order-pi-1", "type": "markdown", "data": f"v{i}",
               "created": "2026-06-01T00:00:00.000001Z"} for i in range(5)]
    seen: list[tuple[str, str, Any]] = []
    answers = iter([503])

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        seen.append((request.method, request.url.path, body))
        if next(answers, None) == 503:
            return httpx.Response(503, json={"detail": "database is locked"})
        if request.url.path == "/api/artifacts/filter":
            offset = body["offset"]
            return httpx.Response(200, json=stored[offset:offset + 2])  # the server's page size
        if request.url.path == "/api/artifacts/id-3" and request.method == "PATCH":
            return httpx.Response(204)
        return httpx.Response(404, json={"detail": "Artifact not found."})

    client = httpx.Client(base_url="http://prefect.test/api", transport=httpx.MockTransport(handler))
    api = PrefectArtifacts(client, sleep=lambda _s: None)
    versions = list(api.versions(["order-pi-1", "order-pi-1-steps", "order-pi-1"]))
    assert [v.data for v in versions] == ["v0", "v1", "v2", "v3", "v4"]
    assert versions[0].created == datetime(2026, 6, 1, 0, 0, 0, 1, tzinfo=UTC)
    filters = [b for m, _p, b in seen if m == "POST"]
    assert [b["offset"] for b in filters] == [0, 0, 2, 4, 5]  # the 503 once, then every page and an empty one
    assert filters[0]["artifacts"] == {"key": {"any_": ["order-pi-1", "order-pi-1-steps"]}}
    assert all("limit" not in b and b["sort"] == "CREATED_DESC" for b in filters)
    api.set_data("id-3", "redacted")
    assert seen[-1] == ("PATCH", "/api/artifacts/id-3", {"data": "redacted"})
    with pytest.raises(PermanentError, match="HTTP 404"):
        api.set_data("id-9", "x")

    down = PrefectArtifacts(httpx.Client(base_url="http://127.0.0.1:9/api", transport=httpx.MockTransport(
        lambda r: (_ for _ in ()).throw(httpx.ConnectError("refused", request=r)))), sleep=lambda _s: None)
    with pytest.raises(TransientError, match="connection failed"):
        list(down.versions(["order-pi-1"]))

    both = Settings(PREFECT_API_AUTH_STRING="admin:pass", PREFECT_API_KEY="pnu_x")  # type: ignore[call-arg]
    assert auth_headers(both) == {"Authorization": "Basic YWRtaW46cGFzcw=="}
    assert auth_headers(Settings(PREFECT_API_KEY="pnu_x")) == {"Authorization": "Bearer pnu_x"}  # type: ignore[call-arg]
