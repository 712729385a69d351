"""Contract tests: AirtableProductionLog against the local Airtable stand-in (real HTTP)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import pytest

from orderpipe.errors import PermanentError, TransientError
from orderpipe.production_log.airtable import AirtableProductionLog
from orderpipe.settings import Settings, load_settings
from tests.contract.order_factory import paid_order
from tests.standins.airtable import BASE_ID, FIELDS, TOKEN, AirtableStandIn
from tests.standins.wsgi_thread import Fault

SHORT = 0.5
ORDER = "pi_3ContractTest001"


@pytest.fixture
def airtable() -> Iterator[AirtableStandIn]:
    # No natural rate limit by default: the flow's shared throttle enforces 5 req/s, and one
    # test below runs with the limit on.
    with AirtableStandIn(requests_per_second=None) as server:
        yield server  # type: ignore[misc]


def airtable_settings(server: AirtableStandIn, **overrides: str) -> Settings:
    values = {"AIRTABLE_TOKEN": server.token, "AIRTABLE_BASE_ID": server.base_id, "AIRTABLE_TABLE": server.table,
              "AIRTABLE_API_BASE": server.url} | overrides
    return load_settings(**values)


@pytest.fixture
def make_log(airtable: AirtableStandIn) -> Iterator[Callable[..., AirtableProductionLog]]:
    made: list[AirtableProductionLog] = []

    def make(*, throttle: Callable[[str], None] | None = None, timeout: float = 5.0,
             **settings: str) -> AirtableProductionLog:
        log = AirtableProductionLog(airtable_settings(airtable, **settings), throttle or (lambda _n: None),
                                    timeout=timeout)
        made.append(log)
        return log

    yield make
    for log in made:
        log.close()


def test_record_order_sends_the_documented_requests(airtable: AirtableStandIn,
                                                     make_log: Callable[..., AirtableProductionLog]) -> None:
    throttled: list[str] = []
    result = make_log(throttle=throttled.append).record_order(paid_order())

    assert result.created is True
    lookup, upsert = airtable.requests
    table_path = f"/v0/{BASE_ID}/Production%20log"
    assert (lookup.method, lookup.raw_path) == ("GET", table_path)
    assert lookup.query == {"filterByFormula": "{Order ID}='pi_3ContractTest001'", "maxRecords": "1"}
    assert (upsert.method, upsert.raw_path) == ("PATCH", table_path)
    for r in (lookup, upsert):
        assert r.headers["authorization"] == f"Bearer {TOKEN}"
    assert upsert.headers["content-type"] == "application/json"
    assert upsert.json() == {
        "performUpsert": {"fieldsToMergeOn": ["Order ID"]},
        "records": [{"fields": {"Order ID": ORDER, "Customer": "Anna Virtanen", "Country": "FI",
                                "Items": "2 x Mug", "Status": "Queued", "Amount": 53.9, "Currency": "EUR"}}],
        "typecast": True}
    assert b'"Amount":53.90' in upsert.body  # exact digits, not a float
    assert throttled == ["airtable-api"] * 2
    (row,) = airtable.by_order(ORDER)
    assert row["id"] == result.entry_id and str(row["fields"]["Amount"]) == "53.90"


def test_repeat_after_a_crash_creates_nothing_twice(airtable: AirtableStandIn,
                                                     make_log: Callable[..., AirtableProductionLog]) -> None:
    first = make_log().record_order(paid_order())
    make_log().update_status(ORDER, "Label printed")
    writes = len(airtable.writes())

    again = make_log().record_order(paid_order())  # a fresh process after the "crash"

    assert again == first.model_copy(update={"created": False})
    assert len(airtable.writes()) == writes
    (row,) = airtable.by_order(ORDER)
    assert row["fields"]["Status"] == "Label printed"  # the repeat did not reset it


def test_vendor_did_it_but_we_timed_out(airtable: AirtableStandIn,
                                        make_log: Callable[..., AirtableProductionLog]) -> None:
    # Faults are taken in order: the lookup answers at once, the upsert is stored and then stalls.
    airtable.inject(Fault(then_process=True, delay=0), Fault(then_process=True, delay=SHORT * 3))
    with pytest.raises(TransientError, match=ORDER):
        make_log(timeout=SHORT).record_order(paid_order())
    assert len(airtable.by_order(ORDER)) == 1  # Airtable stored it; we never heard

    result = make_log().record_order(paid_order())

    assert result.created is False
    assert len(airtable.by_order(ORDER)) == 1


def test_upsert_merges_when_the_lookup_missed(airtable: AirtableStandIn,
                                              make_log: Callable[..., AirtableProductionLog]) -> None:
    first = make_log().record_order(paid_order())
    # Another run raced past its lookup: it answers "nothing yet", the upsert still merges.
    airtable.inject(Fault(status=200, body={"records": []}, path_contains="Production log"))
    second = make_log().record_order(paid_order())
    assert second.entry_id == first.entry_id and second.created is False
    assert len(airtable.by_order(ORDER)) == 1


def test_update_status_patches_the_record(airtable: AirtableStandIn,
                                          make_log: Callable[..., AirtableProductionLog]) -> None:
    entry = make_log().record_order(paid_order()).entry_id
    fresh = make_log()
    fresh.update_status(ORDER, "Label printed, invoiced")
    fresh.update_status(ORDER, "Shipped")

    patches = airtable.calls("PATCH", f"/{entry}")
    assert [(r.raw_path, r.json()) for r in patches] == [
        (f"/v0/{BASE_ID}/Production%20log/{entry}", {"fields": {"Status": "Label printed, invoiced"},
                                                     "typecast": True}),
        (f"/v0/{BASE_ID}/Production%20log/{entry}", {"fields": {"Status": "Shipped"}, "typecast": True})]
    assert len(airtable.calls("GET")) == 2  # one lookup by the fresh instance, then remembered
    (row,) = airtable.by_order(ORDER)
    assert row["fields"]["Status"] == "Shipped" and row["fields"]["Items"] == "2 x Mug"  # PATCH merged


def test_update_status_of_an_unknown_order_is_permanent(make_log: Callable[..., AirtableProductionLog]) -> None:
    with pytest.raises(PermanentError, match="production_log status .* pi_missing: no record"):
        make_log().update_status("pi_missing", "Shipped")


def test_record_deleted_in_airtable_gives_not_found(airtable: AirtableStandIn,
                                                    make_log: Callable[..., AirtableProductionLog]) -> None:
    log = make_log()
    entry = log.record_order(paid_order()).entry_id
    del airtable.records[entry]
    with pytest.raises(PermanentError, match="404: NOT_FOUND"):  # the bare-string error form
        log.update_status(ORDER, "Shipped")


def test_429_asks_for_the_30_second_penalty_then_succeeds(airtable: AirtableStandIn,
                                                          make_log: Callable[..., AirtableProductionLog]) -> None:
    log = make_log()
    airtable.inject(airtable.rate_limited())
    with pytest.raises(TransientError) as caught:
        log.record_order(paid_order())
    assert caught.value.retry_after == 30.0
    assert f"production_log (airtable) for order {ORDER}" in str(caught.value) and "429" in str(caught.value)

    assert log.record_order(paid_order()).created is True


def test_retry_after_longer_than_the_penalty_wins(make_log: Callable[..., AirtableProductionLog],
                                                   airtable: AirtableStandIn) -> None:
    airtable.inject(Fault(status=429, headers={"Retry-After": "45"}, body={"error": {"type": "RATE_LIMIT_REACHED"}}))
    with pytest.raises(TransientError) as caught:
        make_log().check()
    assert caught.value.retry_after == 45.0


def test_exceeding_5_per_second_locks_the_base() -> None:
    with AirtableStandIn(requests_per_second=5, penalty_seconds=0.3) as server:
        log = AirtableProductionLog(airtable_settings(server))  # type: ignore[arg-type]
        try:
            for _ in range(5):
                log.check()
            with pytest.raises(TransientError) as caught:
                log.check()
            assert caught.value.retry_after == 30.0
            with pytest.raises(TransientError):  # still inside the penalty
                log.check()
            time.sleep(0.35)

            spaced: list[float] = []

            def throttle(name: str) -> None:  # what the flow's shared limit does: at most 5/s
                assert name == "airtable-api"
                if len(spaced) >= 5:
                    time.sleep(max(0.0, spaced[-5] + 1.1 - time.monotonic()))  # a little slack
                spaced.append(time.monotonic())

            polite = AirtableProductionLog(airtable_settings(server), throttle)  # type: ignore[arg-type]
            try:
                for i in range(4):
                    polite.record_order(paid_order(f"pi_rate_{i}"))  # 8 requests, none refused
            finally:
                polite.close()
            assert len(server.records) == 4
        finally:
            log.close()


def test_5xx_then_success(airtable: AirtableStandIn, make_log: Callable[..., AirtableProductionLog]) -> None:
    log = make_log()
    airtable.inject(Fault(status=502, body="<html>Bad gateway</html>"))
    with pytest.raises(TransientError, match="502"):
        log.record_order(paid_order())
    assert log.record_order(paid_order()).created is True


def test_timeout_then_success(airtable: AirtableStandIn, make_log: Callable[..., AirtableProductionLog]) -> None:
    log = make_log(timeout=SHORT)
    airtable.inject(Fault(status=200, delay=SHORT * 3))
    with pytest.raises(TransientError, match="timed out"):
        log.record_order(paid_order())
    assert log.record_order(paid_order()).created is True
    assert len(airtable.by_order(ORDER)) == 1


def test_unknown_field_is_permanent(make_log: Callable[..., AirtableProductionLog]) -> None:
    with AirtableStandIn(requests_per_second=None, fields={k: v for k, v in FIELDS.items() if k != "Currency"}) as s:
        log = AirtableProductionLog(airtable_settings(s))  # type: ignore[arg-type]
        try:
            with pytest.raises(PermanentError, match='422: Unknown field name: "Currency"') as caught:
                log.record_order(paid_order())
            assert ORDER in str(caught.value)
            assert s.records == {}
        finally:
            log.close()


def test_wrong_token_is_permanent_and_not_logged(make_log: Callable[..., AirtableProductionLog],
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PermanentError, match="401") as caught:
        make_log(AIRTABLE_TOKEN="patWRONG.secret-value").check()
    assert "patWRONG" not in str(caught.value) and "patWRONG" not in caplog.text


def test_table_name_is_url_encoded(make_log: Callable[..., AirtableProductionLog]) -> None:
    with AirtableStandIn(requests_per_second=None, table="Orders/2026 log") as s:
        log = AirtableProductionLog(airtable_settings(s))  # type: ignore[arg-type]
        try:
            log.record_order(paid_order())
        finally:
            log.close()
        assert {r.raw_path for r in s.requests} == {f"/v0/{BASE_ID}/Orders%2F2026%20log"}
        assert len(s.records) == 1


def test_check_makes_no_writes(airtable: AirtableStandIn, make_log: Callable[..., AirtableProductionLog]) -> None:
    make_log().check()
    assert airtable.writes() == []
    assert [(r.method, r.raw_path, r.query) for r in airtable.requests] == [
        ("GET", f"/v0/{BASE_ID}/Production%20log", {"maxRecords": "1"})]
