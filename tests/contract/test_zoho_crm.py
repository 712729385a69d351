"""Contract tests: ZohoCrm and ZohoTokens against the local Zoho stand-in (real HTTP)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from orderpipe.crm.zoho import ZohoCrm
from orderpipe.crm.zoho_tokens import ZohoTokens
from orderpipe.db import get_engine
from orderpipe.errors import PermanentError, TransientError
from orderpipe.settings import Settings, load_settings
from orderpipe.tables import VendorToken
from tests.contract.order_factory import paid_order
from tests.standins.wsgi_thread import Fault
from tests.standins.zoho import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, ZohoStandIn

SHORT = 0.5  # client timeout (s) for the timeout tests; the stand-in sleeps longer


@pytest.fixture
def zoho() -> Iterator[ZohoStandIn]:
    with ZohoStandIn() as server:
        yield server  # type: ignore[misc]


def zoho_settings(server: ZohoStandIn, **overrides: str) -> Settings:
    values = {"ZOHO_CLIENT_ID": CLIENT_ID, "ZOHO_CLIENT_SECRET": CLIENT_SECRET, "ZOHO_REFRESH_TOKEN": REFRESH_TOKEN,
              "ZOHO_API_BASE": server.url, "ZOHO_ACCOUNTS_BASE": server.url} | overrides
    return load_settings(**values)


@pytest.fixture
def make_crm(zoho: ZohoStandIn, engine: Engine) -> Iterator[Callable[..., ZohoCrm]]:
    made: list[ZohoCrm] = []

    # attempts=1 by default: these tests look at how one failed call is classified, as the
    # step sees a failure that outlasts the in-place repeats (tested on their own below)
    def make(*, throttle: Callable[[str], None] | None = None, timeout: float = 5.0,
             tokens: ZohoTokens | None = None, attempts: int = 1, **settings: str) -> ZohoCrm:
        crm = ZohoCrm(zoho_settings(zoho, **settings), engine, throttle or (lambda _n: None), tokens=tokens,
                      timeout=timeout, attempts=attempts, sleep=lambda _s: None)
        made.append(crm)
        return crm

    yield make
    for crm in made:
        crm.close()


def test_record_order_sends_the_documented_requests(zoho: ZohoStandIn, make_crm: Callable[..., ZohoCrm]) -> None:
    throttled: list[str] = []
    crm = make_crm(throttle=throttled.append)

    result = crm.record_order(paid_order())

    assert result.created is True
    assert [(r.method, r.path) for r in zoho.requests] == [
        ("POST", "/oauth/v2/token"),
        ("GET", "/crm/v8/Deals/search"),
        ("POST", "/crm/v8/Contacts/upsert"),
        ("POST", "/crm/v8/Deals/upsert"),
    ]
    token_call, search, contact_call, deal_call = zoho.requests
    assert token_call.headers["content-type"] == "application/x-www-form-urlencoded"
    assert token_call.form() == {"grant_type": "refresh_token", "client_id": CLIENT_ID,
                                 "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN}
    assert token_call.query == {}  # secrets never in the URL
    (token,) = zoho.tokens
    for r in (search, contact_call, deal_call):
        assert r.headers["authorization"] == f"Zoho-oauthtoken {token}"
    assert search.query == {"criteria": "(Stripe_PaymentIntent:equals:pi_3ContractTest001)"}
    assert contact_call.headers["content-type"] == "application/json"
    assert contact_call.json() == {
        "data": [{"Last_Name": "Virtanen", "First_Name": "Anna", "Email": "anna@example.fi",
                  "Phone": "+358401234567", "Mailing_Street": "Katu 1", "Mailing_City": "Helsinki",
                  "Mailing_Zip": "00100", "Mailing_Country": "Finland"}],
        "duplicate_check_fields": ["Email"], "trigger": ["workflow"]}
    deal = deal_call.json()
    assert deal["duplicate_check_fields"] == ["Stripe_PaymentIntent"]
    assert deal["trigger"] == []
    (fields,) = deal["data"]
    assert fields["Deal_Name"] == "Order A-1001"
    assert fields["Stage"] == "Closed Won"
    assert fields["Closing_Date"] == "2026-05-10"
    assert fields["Stripe_PaymentIntent"] == "pi_3ContractTest001"
    assert fields["Contact_Name"] == {"id": result.contact_id}
    assert b'"Amount":53.90' in deal_call.body  # exact JSON number, never a float rounding
    assert throttled == ["zoho-api"] * 3
    (contact,) = zoho.records["Contacts"].values()
    (stored_deal,) = zoho.records["Deals"].values()
    assert (contact["id"], stored_deal["id"]) == (result.contact_id, result.deal_id)


def test_repeat_after_a_crash_creates_nothing_twice(zoho: ZohoStandIn, make_crm: Callable[..., ZohoCrm]) -> None:
    first = make_crm().record_order(paid_order())
    writes = len(zoho.writes())

    again = make_crm().record_order(paid_order())  # a fresh process after the "crash"

    assert again.created is False
    assert (again.contact_id, again.deal_id) == (first.contact_id, first.deal_id)
    assert len(zoho.writes()) == writes  # the repeat only searched
    assert len(zoho.records["Deals"]) == 1 and len(zoho.records["Contacts"]) == 1
    assert zoho.token_grants == 1  # the second instance reused the cached token


def test_vendor_did_it_but_we_timed_out(zoho: ZohoStandIn, make_crm: Callable[..., ZohoCrm]) -> None:
    zoho.inject(Fault(path_contains="/Deals/upsert", then_process=True, delay=SHORT * 3))
    with pytest.raises(TransientError, match="pi_3ContractTest001"):
        make_crm(timeout=SHORT).record_order(paid_order())
    assert len(zoho.records["Deals"]) == 1  # Zoho created it; we never heard

    result = make_crm().record_order(paid_order())

    assert result.created is False
    assert len(zoho.records["Deals"]) == 1


def test_same_customer_second_order_updates_the_contact(zoho: ZohoStandIn,
                                                        make_crm: Callable[..., ZohoCrm]) -> None:
    crm = make_crm()
    a = crm.record_order(paid_order("pi_A"))
    b = crm.record_order(paid_order("pi_B"))
    assert a.contact_id == b.contact_id and a.deal_id != b.deal_id
    assert b.created is True
    assert len(zoho.records["Contacts"]) == 1 and len(zoho.records["Deals"]) == 2


@pytest.mark.parametrize("retry_after", [7, None])
def test_429_is_transient_with_the_hint_then_succeeds(zoho: ZohoStandIn, make_crm: Callable[..., ZohoCrm],
                                                      retry_after: int | None) -> None:
    crm = make_crm()
    zoho.inject(ZohoStandIn.too_many_requests(retry_after=retry_after, path_contains="/Contacts/upsert"))
    with pytest.raises(TransientError) as caught:
        crm.record_order(paid_order())
    assert caught.value.retry_after == retry_after
    assert "crm (zoho) for order pi_3ContractTest001" in str(caught.value)
    assert "429" in str(caught.value)

    assert crm.record_order(paid_order()).created is True
    assert len(zoho.records["Deals"]) == 1


def test_5xx_then_success(zoho: ZohoStandIn, make_crm: Callable[..., ZohoCrm]) -> None:
    crm = make_crm()
    zoho.inject(Fault(status=503, path_contains="/Deals/upsert", body="<html>Service Unavailable</html>"))
    with pytest.raises(TransientError, match="503"):
        crm.record_order(paid_order())
    assert crm.record_order(paid_order()).created is True
    assert len(zoho.records["Deals"]) == 1


def test_timeout_then_success(zoho: ZohoStandIn, make_crm: Callable[..., ZohoCrm]) -> None:
    crm = make_crm(timeout=SHORT)
    zoho.inject(Fault(status=200, path_contains="/Deals/search", delay=SHORT * 3))
    with pytest.raises(TransientError, match="timed out"):
        crm.record_order(paid_order())
    assert crm.record_order(paid_order()).created is True


def test_per_record_error_in_a_2xx_answer_is_permanent(zoho: ZohoStandIn,
                                                       make_crm: Callable[..., ZohoCrm]) -> None:
    zoho.inject(ZohoStandIn.record_error("MANDATORY_NOT_FOUND", "Closing_Date", path_contains="/Deals/upsert"))
    with pytest.raises(PermanentError) as caught:
        make_crm().record_order(paid_order())
    message = str(caught.value)
    assert "pi_3ContractTest001" in message and "MANDATORY_NOT_FOUND" in message and "Closing_Date" in message
    assert zoho.records["Deals"] == {}


def test_invalid_email_is_rejected_in_band(zoho: ZohoStandIn, make_crm: Callable[..., ZohoCrm]) -> None:
    with pytest.raises(PermanentError, match="INVALID_DATA.*Email"):
        make_crm().record_order(paid_order(email="not-an-email"))
    assert zoho.records["Contacts"] == {}


@pytest.mark.parametrize(("override", "code"), [({"ZOHO_CLIENT_SECRET": "wrong-secret-xyz"}, "invalid_client"),
                                                ({"ZOHO_REFRESH_TOKEN": "1000.revoked.zzz"}, "invalid_code")])
def test_token_endpoint_error_body_is_permanent_and_names_no_secret(
        zoho: ZohoStandIn, make_crm: Callable[..., ZohoCrm], override: dict[str, str], code: str,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PermanentError) as caught:
        make_crm(**override).record_order(paid_order())
    message = str(caught.value)
    assert code in message and "pi_3ContractTest001" in message
    for secret in (*override.values(), CLIENT_SECRET, REFRESH_TOKEN):
        assert secret not in message and secret not in caplog.text
    assert zoho.calls(path_contains="/crm/") == []  # no CRM call without a token


def test_token_throttle_is_transient_for_the_whole_window(zoho: ZohoStandIn,
                                                           make_crm: Callable[..., ZohoCrm]) -> None:
    zoho.token_limit = 0
    with pytest.raises(TransientError) as caught:
        make_crm().record_order(paid_order())
    assert caught.value.retry_after is not None and caught.value.retry_after >= 600
    assert "too many requests" in str(caught.value)


def test_no_secret_or_token_in_logs(zoho: ZohoStandIn, make_crm: Callable[..., ZohoCrm],
                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    make_crm().record_order(paid_order())
    (token,) = zoho.tokens
    for secret in (token, CLIENT_SECRET, REFRESH_TOKEN):
        assert secret not in caplog.text


def _check_in_threads(n: int, make: Callable[[], ZohoCrm]) -> list[BaseException]:
    crms = [make() for _ in range(n)]
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def run(crm: ZohoCrm) -> None:
        start.wait()
        try:
            crm.check()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in crms]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return errors


def test_ten_threads_one_refresh_sqlite(zoho: ZohoStandIn, make_crm: Callable[..., ZohoCrm]) -> None:
    zoho.token_grant_delay = 0.1  # the refreshes would overlap if they were not serialised
    assert _check_in_threads(10, make_crm) == []
    assert zoho.token_grants == 1
    assert len(zoho.calls("GET", "/crm/v8/users")) == 10


def test_ten_threads_one_refresh_postgres(zoho: ZohoStandIn, postgres_url: str) -> None:
    zoho.token_grant_delay = 0.1
    engine = get_engine(postgres_url)
    made: list[ZohoCrm] = []

    def make() -> ZohoCrm:
        made.append(ZohoCrm(zoho_settings(zoho), engine))
        return made[-1]

    try:
        assert _check_in_threads(10, make) == []
    finally:
        for crm in made:
            crm.close()
    assert zoho.token_grants == 1
    with Session(engine) as session:
        (row,) = session.exec(select(VendorToken)).all()
        assert row.access_token in zoho.tokens


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_token_reused_then_refreshed_when_about_to_expire(zoho: ZohoStandIn, engine: Engine,
                                                          make_crm: Callable[..., ZohoCrm]) -> None:
    clock = FakeClock()
    tokens = ZohoTokens(zoho_settings(zoho), engine, clock=clock)
    crm = make_crm(tokens=tokens)
    try:
        crm.check()
        clock.now += timedelta(minutes=50)  # 10 min left: still good
        crm.check()
        assert zoho.token_grants == 1
        clock.now += timedelta(minutes=6)  # 4 min left: refresh before Zoho says no
        crm.check()
        assert zoho.token_grants == 2
        used = {r.headers["authorization"] for r in zoho.calls("GET", "/crm/v8/users")}
        assert len(used) == 2
    finally:
        tokens.close()


def test_invalid_token_forces_one_refresh_and_one_retry(zoho: ZohoStandIn, make_crm: Callable[..., ZohoCrm]) -> None:
    crm = make_crm()
    crm.check()
    zoho.expire_tokens()  # Zoho no longer accepts the cached token although our clock says it is fine

    result = crm.record_order(paid_order())

    assert result.created is True
    assert zoho.token_grants == 2
    statuses = [r.path for r in zoho.requests]
    assert statuses.count("/crm/v8/Deals/search") == 2  # the rejected call was retried once


def test_token_rejected_twice_is_permanent(zoho: ZohoStandIn, make_crm: Callable[..., ZohoCrm]) -> None:
    invalid: dict[str, Any] = {"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token",
                               "status": "error"}
    zoho.inject(Fault(status=401, body=invalid, path_contains="/users"),
                Fault(status=401, body=invalid, path_contains="/users"))
    with pytest.raises(PermanentError, match="401"):
        make_crm().check()
    assert zoho.token_grants == 2  # one forced refresh, not a loop
    assert len(zoho.calls("GET", "/crm/v8/users")) == 2


def test_check_makes_no_writes(zoho: ZohoStandIn, make_crm: Callable[..., ZohoCrm]) -> None:
    make_crm().check()
    assert zoho.writes() == []
    assert [(r.method, r.path, r.query) for r in zoho.calls(path_contains="/crm/")] == [
        ("GET", "/crm/v8/users", {"type": "CurrentUser"})]


def test_check_with_a_bad_client_fails_permanently(zoho: ZohoStandIn, make_crm: Callable[..., ZohoCrm]) -> None:
    with pytest.raises(PermanentError, match="invalid_client"):
        make_crm(ZOHO_CLIENT_ID="1000.OTHER").check()


def test_refund_moves_the_deals_stage_and_a_repeat_writes_nothing(zoho: ZohoStandIn,
                                                                  make_crm: Callable[..., ZohoCrm]) -> None:
    crm = make_crm()
    deal_id = crm.record_order(paid_order()).deal_id
    before = dict(zoho.records["Deals"][deal_id])
    zoho.requests.clear()

    assert crm.record_refund("pi_3ContractTest001", "partially_refunded", 1000) is True

    assert [(r.method, r.path) for r in zoho.requests] == [("GET", "/crm/v8/Deals/search"),
                                                           ("POST", "/crm/v8/Deals/upsert")]
    search, update = zoho.requests
    assert search.query == {"criteria": "(Stripe_PaymentIntent:equals:pi_3ContractTest001)"}
    assert update.json() == {"data": [{"Stripe_PaymentIntent": "pi_3ContractTest001", "Stage": "Partially refunded",
                                       "Deal_Name": before["Deal_Name"], "Closing_Date": before["Closing_Date"]}],
                             "duplicate_check_fields": ["Stripe_PaymentIntent"], "trigger": []}
    after = zoho.records["Deals"][deal_id]
    assert after["Stage"] == "Partially refunded"
    assert {k: v for k, v in after.items() if k not in ("Stage", "Modified_Time")} == {
        k: v for k, v in before.items() if k not in ("Stage", "Modified_Time")}

    # a repeat (retry, replayed run) only searches: nothing else changes
    settled = dict(after)
    zoho.requests.clear()
    assert make_crm().record_refund("pi_3ContractTest001", "partially_refunded", 1000) is True
    assert [(r.method, r.path) for r in zoho.requests] == [("GET", "/crm/v8/Deals/search")]
    assert zoho.records["Deals"][deal_id] == settled and len(zoho.records["Deals"]) == 1

    assert crm.record_refund("pi_3ContractTest001", "refunded", 5390) is True
    assert zoho.records["Deals"][deal_id]["Stage"] == "Refunded" and len(zoho.records["Deals"]) == 1


def test_refund_of_an_order_without_a_deal_writes_nothing(zoho: ZohoStandIn,
                                                          make_crm: Callable[..., ZohoCrm]) -> None:
    assert make_crm().record_refund("pi_3NoDealHere", "refunded", 100) is False
    assert zoho.writes() == [] and zoho.records["Deals"] == {}


def test_refund_stage_update_errors_are_mapped(zoho: ZohoStandIn, make_crm: Callable[..., ZohoCrm]) -> None:
    crm = make_crm()
    deal_id = crm.record_order(paid_order()).deal_id
    zoho.inject(ZohoStandIn.too_many_requests(retry_after=7, path_contains="/Deals/upsert"))
    with pytest.raises(TransientError) as caught:
        crm.record_refund("pi_3ContractTest001", "refunded", 5390)
    assert caught.value.retry_after == 7 and "crm (zoho) for order pi_3ContractTest001" in str(caught.value)
    zoho.inject(ZohoStandIn.record_error("INVALID_DATA", "Stage", path_contains="/Deals/upsert"))
    with pytest.raises(PermanentError, match="pi_3ContractTest001.*INVALID_DATA.*Stage"):
        crm.record_refund("pi_3ContractTest001", "refunded", 5390)
    assert zoho.records["Deals"][deal_id]["Stage"] == "Closed Won"
    assert crm.record_refund("pi_3ContractTest001", "refunded", 5390) is True
    assert zoho.records["Deals"][deal_id]["Stage"] == "Refunded"


def test_each_call_is_repeated_in_place_on_transient_failures_without_duplicates(
        zoho: ZohoStandIn, make_crm: Callable[..., ZohoCrm]) -> None:
    """Zoho calls are reads and keyed upserts: a 503, a 429 and a lost answer on the three
    calls of one order are absorbed by the in-place repeats; one contact, one deal."""
    zoho.inject(Fault(status=503, path_contains="/Deals/search", body="<html>Service Unavailable</html>"),
                ZohoStandIn.too_many_requests(retry_after=1, path_contains="/Contacts/upsert"),
                Fault(path_contains="/Deals/upsert", then_process=True, delay=SHORT * 3))
    before = len(zoho.requests)

    result = make_crm(timeout=SHORT, attempts=3).record_order(paid_order())

    assert result.deal_id in zoho.records["Deals"]
    assert len(zoho.records["Contacts"]) == 1 and len(zoho.records["Deals"]) == 1
    paths = [r.path for r in zoho.requests[before:] if "/oauth/" not in r.path]
    assert sum("/Deals/search" in p for p in paths) == 2
    assert sum("/Contacts/upsert" in p for p in paths) == 2
    assert sum("/Deals/upsert" in p for p in paths) == 2  # the lost one (Zoho created the deal), then an update


def test_a_call_failing_every_attempt_fails_the_step_after_three(zoho: ZohoStandIn,
                                                                 make_crm: Callable[..., ZohoCrm]) -> None:
    zoho.inject(*[Fault(status=502, path_contains="/Contacts/upsert", body="bad gateway") for _ in range(3)])
    before = len(zoho.requests)
    with pytest.raises(TransientError, match="502"):
        make_crm(attempts=3).record_order(paid_order())
    assert sum("/Contacts/upsert" in r.path for r in zoho.requests[before:]) == 3
    assert zoho.records["Deals"] == {}
