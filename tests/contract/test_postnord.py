"""PostNordShipping against the PostNord stand-in (shared/docs/vendor-apis.md section 4)."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import Session

from orderpipe import vendor_attempts
from orderpipe.connectors.file_store_local import LocalFileStore
from orderpipe.db import get_engine
from orderpipe.errors import NeedsAttention, OrderDataError, PermanentError, TransientError
from orderpipe.order import Address, Order, OrderLine
from orderpipe.settings import Settings, load_settings
from orderpipe.shipping import postnord
from orderpipe.shipping.postnord import BOOK_PATH, LABEL_BY_ID_PATH, PostNordShipping
from orderpipe.tables import PostNordBooking
from tasks.step_policy import retry_unless_permanent
from tests.standins.postnord import API_KEY, SERVICE_CODES_PATH, PostNordStandIn, label_pdf
from tests.standins.wsgi_thread import Drop, Fault

TEMPLATE = "https://track.example/{tracking_number}"


def make_order(order_id: str = "pi_3PostNord1", **address: str | None) -> Order:
    fields: dict[str, str | None] = {"name": "Anna Virtanen", "line1": "Katu 1", "line2": "B 12",
                                     "postal_code": "00100", "city": "Helsinki", "country": "FI"}
    fields.update(address)
    return Order(
        order_id=order_id, created=datetime(2026, 5, 10, 10, 0, tzinfo=UTC), currency="eur", amount_total=5390,
        customer_email="anna@example.fi", customer_name="Anna Virtanen", customer_phone="+358401234567",
        shipping_address=Address(**fields),
        lines=[OrderLine(description="Mug", quantity=2, amount_subtotal=4000, amount_total=4400, amount_tax=400),
               OrderLine(description="Shipping", quantity=1, amount_subtotal=990, amount_total=990,
                         is_shipping=True)],
    )


@pytest.fixture
def standin() -> Iterator[PostNordStandIn]:
    with PostNordStandIn() as s:
        yield s  # type: ignore[misc]


def journal(db_url: str) -> list[PostNordBooking]:
    with Session(get_engine(db_url)) as s:
        return list(s.scalars(select(PostNordBooking)))


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, data_dir: Path, sqlite_url: str, standin: PostNordStandIn) -> Settings:
    for name, value in {
        "ORDERPIPE_DATA_DIR": str(data_dir), "DATABASE_URL": sqlite_url,
        "ORDERPIPE_SHIPPING": "postnord", "POSTNORD_API_KEY": API_KEY,
        "POSTNORD_CUSTOMER_NUMBER": "0111111118", "POSTNORD_SERVICE_CODE": "19",
        "POSTNORD_API_BASE": standin.url, "ORDERPIPE_SELLER_NAME": "Painotalo Pikkuna Oy",
        "ORDERPIPE_SELLER_COUNTRY": "FI",
    }.items():
        monkeypatch.setenv(name, value)
    return load_settings()


@pytest.fixture
def files(data_dir: Path) -> LocalFileStore:
    return LocalFileStore(data_dir)


@pytest.fixture
def shipping(settings: Settings, files: LocalFileStore) -> Iterator[PostNordShipping]:
    connector = PostNordShipping(settings, files, TEMPLATE, timeout=0.5)
    yield connector
    connector.close()


def test_books_and_stores_label_with_the_documented_request(
    shipping: PostNordShipping, standin: PostNordStandIn, data_dir: Path
) -> None:
    result = shipping.create_shipment(make_order())

    [req] = standin.requests
    assert (req.method, req.path) == ("POST", BOOK_PATH)
    assert req.query["apikey"] == API_KEY and req.query["paperSize"] == "A5"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["accept"] == "application/json"
    assert req.headers["x-external-request-id"]
    body = req.json()
    assert body["messageId"] == "pi_3PostNord1-1"
    assert body["messageFunction"] == "Instruction" and body["updateIndicator"] == "Original"
    shipment = body["shipment"][0]
    assert shipment["service"]["basicServiceCode"] == "19"
    assert shipment["references"] == [{"referenceNo": "pi_3PostNord1", "referenceType": "CU"}]
    consignor = shipment["parties"]["consignor"]
    assert consignor["issuerCode"] == "Z14"
    assert consignor["partyIdentification"] == {"partyId": "0111111118", "partyIdType": "160"}
    assert consignor["party"]["nameIdentification"]["name"] == "Painotalo Pikkuna Oy"
    assert consignor["party"]["address"]["countryCode"] == "FI"
    consignee = shipment["parties"]["consignee"]["party"]
    assert consignee["nameIdentification"]["name"] == "Anna Virtanen"
    assert consignee["address"] == {"streets": ["Katu 1", "B 12"], "postalCode": "00100", "city": "Helsinki",
                                    "countryCode": "FI"}
    assert consignee["contact"] == {"contactName": "Anna Virtanen", "emailAddress": "anna@example.fi",
                                    "smsNo": "+358401234567"}
    assert shipment["totalGrossWeight"] == {"value": 1.0, "unit": "KGM"}

    [booking] = standin.bookings
    assert result.tracking_number == booking.item_id and len(result.tracking_number) == 20
    assert result.carrier == "postnord" and result.created is True
    assert result.tracking_url == f"https://tracking.postnord.com/fi/?id={booking.item_id}"
    assert result.label.key == "labels/pi_3PostNord1.pdf"
    label = data_dir / "labels" / "pi_3PostNord1.pdf"
    assert label.read_bytes() == booking.label and label.read_bytes().startswith(b"%PDF")


def test_repeat_after_a_crash_books_nothing_twice(
    settings: Settings, files: LocalFileStore, standin: PostNordStandIn, data_dir: Path
) -> None:
    first = PostNordShipping(settings, files, TEMPLATE)
    created = first.create_shipment(make_order())
    first.close()  # the process dies before Prefect records the result
    (data_dir / "labels" / "pi_3PostNord1.pdf").unlink()  # even the stored label went missing

    second = PostNordShipping(settings, files, TEMPLATE)
    again = second.create_shipment(make_order())
    second.close()

    assert len(standin.bookings) == 1
    assert len(standin.calls("POST", BOOK_PATH)) == 1
    assert again.tracking_number == created.tracking_number and again.created is False
    assert (data_dir / "labels" / "pi_3PostNord1.pdf").read_bytes() == standin.bookings[0].label


def other_machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_url: str) -> tuple[Settings, Path]:
    """Settings of a second worker machine: its own, empty data dir; the shared database."""
    empty = tmp_path / "other-machine"
    empty.mkdir()
    monkeypatch.setenv("ORDERPIPE_DATA_DIR", str(empty))
    monkeypatch.setenv("DATABASE_URL", db_url)
    return load_settings(), empty


def test_journal_survives_a_new_process_with_an_empty_data_dir(
    settings: Settings, files: LocalFileStore, standin: PostNordStandIn, any_db_url: str,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    monkeypatch.setenv("DATABASE_URL", any_db_url)
    first = PostNordShipping(load_settings(), files, TEMPLATE)
    created = first.create_shipment(make_order())
    first.close()  # the machine is gone before Prefect records the result

    other_settings, empty = other_machine(monkeypatch, tmp_path, any_db_url)
    second = PostNordShipping(other_settings, LocalFileStore(empty), TEMPLATE)
    again = second.create_shipment(make_order())
    second.close()

    assert len(standin.bookings) == 1 and len(standin.calls("POST", BOOK_PATH)) == 1
    assert again.tracking_number == created.tracking_number == standin.bookings[0].item_id
    assert again.created is False and again.tracking_url == created.tracking_url
    assert (empty / "labels" / "pi_3PostNord1.pdf").read_bytes() == standin.bookings[0].label
    assert not (empty / "postnord").exists()  # nothing on the machine's disk but the label it stored
    [row] = journal(any_db_url)
    assert (row.order_id, row.item_id) == ("pi_3PostNord1", created.tracking_number)
    assert row.booking_id == standin.bookings[0].booking_id and row.label_b64


def test_a_booking_whose_label_failed_is_completed_by_another_machine(
    settings: Settings, files: LocalFileStore, standin: PostNordStandIn, sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    standin.next_booking = "label_fail"
    first = PostNordShipping(settings, files, TEMPLATE)
    with pytest.raises(PermanentError, match="a replay fetches the label by id"):
        first.create_shipment(make_order())
    first.close()
    [row] = journal(sqlite_url)
    assert row.item_id == standin.bookings[0].item_id and row.label_b64 is None  # journalled, label missing

    other_settings, empty = other_machine(monkeypatch, tmp_path, sqlite_url)
    second = PostNordShipping(other_settings, LocalFileStore(empty), TEMPLATE)
    result = second.create_shipment(make_order())
    again = second.create_shipment(make_order())
    second.close()

    [booking] = standin.bookings
    assert len(standin.calls("POST", LABEL_BY_ID_PATH)) == 1  # the label is journalled once fetched
    assert result.tracking_number == again.tracking_number == booking.item_id
    assert (empty / "labels" / "pi_3PostNord1.pdf").read_bytes() == booking.label
    [row] = journal(sqlite_url)
    assert row.label_b64 and base64.b64decode(row.label_b64) == booking.label


def test_a_booking_journalled_on_disk_by_an_older_version_moves_into_the_database(
    shipping: PostNordShipping, standin: PostNordStandIn, data_dir: Path, sqlite_url: str,
) -> None:
    label = label_pdf("00370712345678901234")
    legacy = data_dir / "postnord" / "pi_3PostNord1.json"
    legacy.parent.mkdir()
    legacy.write_text(json.dumps({"order_id": "pi_3PostNord1", "item_id": "00370712345678901234",
                                  "tracking_url": "https://tracking.postnord.com/fi/?id=00370712345678901234",
                                  "booking_id": "B-1", "label_b64": base64.b64encode(label).decode(),
                                  "booked_at": "2026-11-30T10:00:00+00:00"}))
    result = shipping.create_shipment(make_order())
    assert standin.requests == []  # booked before the upgrade: not booked again
    assert result.tracking_number == "00370712345678901234" and result.created is False
    assert (data_dir / "labels" / "pi_3PostNord1.pdf").read_bytes() == label
    [row] = journal(sqlite_url)
    assert (row.item_id, row.booking_id) == ("00370712345678901234", "B-1")


def test_check_verifies_the_journal_database_not_a_directory(
    standin: PostNordStandIn, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, settings: Settings,
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data dir would be")
    monkeypatch.setenv("ORDERPIPE_DATA_DIR", str(blocker))  # no writable journal dir anywhere
    connector = PostNordShipping(load_settings(), LocalFileStore(tmp_path), TEMPLATE)
    connector.check()  # the migrated database is enough
    connector.close()

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'never-migrated.db'}")
    unmigrated = PostNordShipping(load_settings(), LocalFileStore(tmp_path), TEMPLATE)
    with pytest.raises(PermanentError, match="PostNord booking journal: orderpipe's database cannot be read"):
        unmigrated.check()
    with pytest.raises(TransientError, match="PostNord booking journal: cannot read"):
        unmigrated.create_shipment(make_order())
    unmigrated.close()
    assert standin.bookings == []  # no journal, no booking


def test_429_then_success(shipping: PostNordShipping, standin: PostNordStandIn) -> None:
    standin.inject(Fault(status=429, body={"message": "Too many requests"}, headers={"Retry-After": "3"}))
    with pytest.raises(TransientError) as exc:
        shipping.create_shipment(make_order())
    assert exc.value.retry_after == 3
    result = shipping.create_shipment(make_order())
    assert len(standin.bookings) == 1 and result.tracking_number == standin.bookings[0].item_id


def test_non_json_502_then_success(shipping: PostNordShipping, standin: PostNordStandIn) -> None:
    standin.inject(Fault(status=502, body="<html><body>Bad Gateway</body></html>"))
    with pytest.raises(TransientError, match="HTTP 502"):
        shipping.create_shipment(make_order())
    assert shipping.create_shipment(make_order()).created is True
    assert len(standin.bookings) == 1


def test_connection_refused_then_success(settings: Settings, files: LocalFileStore,
                                         standin: PostNordStandIn) -> None:
    """Nothing can have reached PostNord when the connection was never made: retried."""
    dead = PostNordShipping(settings.model_copy(update={"postnord_api_base": "http://127.0.0.1:9"}), files, TEMPLATE,
                            timeout=0.5)
    with pytest.raises(TransientError, match="connection failed") as exc:
        dead.create_shipment(make_order())
    assert not isinstance(exc.value, NeedsAttention)
    dead.close()
    result = PostNordShipping(settings, files, TEMPLATE).create_shipment(make_order())
    assert len(standin.bookings) == 1 and result.tracking_number == standin.bookings[0].item_id


@pytest.mark.parametrize("fault", [Fault(delay=1.5, then_process=True), Drop()],
                         ids=["booked-then-timed-out", "booked-then-connection-dropped"])
def test_unknown_outcome_is_never_booked_again(shipping: PostNordShipping, standin: PostNordStandIn,
                                               sqlite_url: str, fault: Fault | Drop) -> None:
    """PostNord booked but its answer was lost. PostNord offers no lookup by reference, so
    no retry and no replay books again: the step needs a person, told what to look for."""
    standin.inject(fault)
    with pytest.raises(NeedsAttention) as exc:
        shipping.create_shipment(make_order())
    assert not retry_unless_permanent(None, None, _State(exc.value))  # Prefect does not retry it
    assert "messageId pi_3PostNord1-1" in exc.value.what_to_check
    assert "orderpipe resolve pi_3PostNord1 shipment" in exc.value.what_to_check
    standin.wait_idle()
    for _ in range(2):  # a replay (or another worker) later: still nothing booked twice
        with pytest.raises(NeedsAttention, match="unknown outcome"):
            shipping.create_shipment(make_order())
    assert len(standin.bookings) == 1 and len(standin.calls("POST", BOOK_PATH)) == 1
    assert journal(sqlite_url) == []

    # The person found the booking missing in PostNord (here: cancelled it) and resolves.
    standin.bookings.clear()
    assert vendor_attempts.resolve(get_engine(sqlite_url), "pi_3PostNord1", "shipment") is not None
    result = shipping.create_shipment(make_order())
    assert [b.item_id for b in standin.bookings] == [result.tracking_number]


def test_journal_write_failing_after_the_booking_is_never_retried_into_a_second_booking(
    shipping: PostNordShipping, standin: PostNordStandIn, sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PostNord said yes, then the journal write failed (disk full): not transient, not booked again."""
    engine = get_engine(sqlite_url)
    with engine.begin() as conn:  # the journal table refuses writes, as a full disk would
        conn.exec_driver_sql("CREATE TRIGGER full BEFORE INSERT ON postnord_bookings "
                             "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    monkeypatch.setattr(postnord, "JOURNAL_WRITE_TRIES", 2)
    with pytest.raises(NeedsAttention, match="PostNord booked item 0037") as exc:
        shipping.create_shipment(make_order())
    assert "database or disk is full" in str(exc.value)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER full")
    with pytest.raises(NeedsAttention, match="unknown outcome"):
        shipping.create_shipment(make_order())  # the replay after the disk was freed
    assert len(standin.bookings) == 1 and len(standin.calls("POST", BOOK_PATH)) == 1


def test_a_gateway_timeout_is_an_unknown_outcome(shipping: PostNordShipping, standin: PostNordStandIn) -> None:
    """504: the gateway stopped waiting; PostNord behind it may have booked."""
    standin.inject(Fault(status=504, body="<html>Gateway Time-out</html>"))
    with pytest.raises(NeedsAttention, match="HTTP 504"):
        shipping.create_shipment(make_order())
    with pytest.raises(NeedsAttention, match="unknown outcome"):
        shipping.create_shipment(make_order())
    assert len(standin.calls("POST", BOOK_PATH)) == 1


class _State:
    def __init__(self, exc: BaseException) -> None:
        self.data = exc


@pytest.mark.parametrize("mode", ["status_fail", "empty"])
def test_in_band_booking_failure_is_permanent(
    shipping: PostNordShipping, standin: PostNordStandIn, data_dir: Path, sqlite_url: str, mode: str
) -> None:
    standin.next_booking = mode
    with pytest.raises(PermanentError, match="PostNord cannot ship to FI for order pi_3PostNord1: ") as exc:
        shipping.create_shipment(make_order())
    if mode == "status_fail":
        assert "ERROR" in str(exc.value) and "not available to FI" in str(exc.value)
    assert not (data_dir / "labels").exists()
    assert journal(sqlite_url) == []  # nothing booked, nothing journalled


def test_refused_destination_names_country_and_order(shipping: PostNordShipping) -> None:
    with pytest.raises(PermanentError, match="PostNord cannot ship to KP for order pi_3PostNord1"):
        shipping.create_shipment(make_order(country="KP"))


@pytest.mark.parametrize("mode", ["label_fail", "no_label"])
def test_booking_without_label_is_permanent_and_replay_fetches_label_by_id(
    shipping: PostNordShipping, standin: PostNordStandIn, data_dir: Path, mode: str
) -> None:
    standin.next_booking = mode
    with pytest.raises(PermanentError, match="PostNord cannot ship to FI for order pi_3PostNord1") as exc:
        shipping.create_shipment(make_order())
    assert "a replay fetches the label by id" in str(exc.value)
    assert not (data_dir / "labels").exists()  # never an empty label

    result = shipping.create_shipment(make_order())
    [booking] = standin.bookings
    [by_id] = standin.calls("POST", LABEL_BY_ID_PATH)
    assert by_id.json() == [{"id": booking.item_id}] and by_id.query["apikey"] == API_KEY
    assert result.tracking_number == booking.item_id and result.created is False
    assert (data_dir / "labels" / "pi_3PostNord1.pdf").read_bytes() == booking.label


def test_missing_address_fields_are_named_and_nothing_is_sent(
    shipping: PostNordShipping, standin: PostNordStandIn
) -> None:
    with pytest.raises(OrderDataError, match="pi_3PostNord1: shipping address is missing postal_code, city"):
        shipping.create_shipment(make_order(postal_code=None, city=""))
    order = make_order().model_copy(update={"shipping_address": None})
    with pytest.raises(OrderDataError, match="no shipping address"):
        shipping.create_shipment(order)
    assert standin.requests == []


def test_check_is_an_authenticated_read(shipping: PostNordShipping, standin: PostNordStandIn) -> None:
    shipping.check()
    [req] = standin.requests
    assert (req.method, req.path, req.query["apikey"]) == ("GET", SERVICE_CODES_PATH, API_KEY)
    assert standin.bookings == []


def test_wrong_key_is_permanent_and_never_leaks(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, files: LocalFileStore, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("POSTNORD_API_KEY", "wrong-secret-key")
    connector = PostNordShipping(load_settings(), files, TEMPLATE)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PermanentError, match="HTTP 403") as exc:
        connector.check()
    with pytest.raises(PermanentError) as exc2:
        connector.create_shipment(make_order())
    connector.close()
    assert "wrong-secret-key" not in str(exc.value) + str(exc2.value)
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("werkzeug"))  # not the stand-in
    assert "wrong-secret-key" not in ours
    assert "apikey=***" in ours  # httpx logged the request, with the key redacted
