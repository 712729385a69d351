"""Embedded shipping against a real database and the local file store."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy import Engine
from sqlmodel import Session, select

from orderpipe.connectors.file_store_local import LocalFileStore
from orderpipe.db import get_engine
from orderpipe.errors import OrderDataError, PermanentError
from orderpipe.order import Address, Order, OrderLine
from orderpipe.shipping.local import LocalShipping
from orderpipe.shipping.tracking_number import is_valid
from orderpipe.tables import Shipment

SENDER = ["Painotalo Pikkuna Oy", "Tehtaankatu 12", "00140 Helsinki", "FINLAND"]
TEMPLATE = "https://tracking.example/track?id={tracking_number}"


def make_order(order_id: str = "pi_3Ship", **kw: object) -> Order:
    values: dict[str, object] = {
        "order_id": order_id,
        "created": datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
        "currency": "eur",
        "amount_total": 4990,
        "customer_email": "asa@example.se",
        "customer_name": "Åsa Öberg-Ståhl",
        "shipping_address": Address(
            name="Åsa Öberg-Ståhl", line1="Storgatan 1", postal_code="114 51", city="Stockholm", country="SE"
        ),
        "lines": [OrderLine(description="Poster", quantity=1, amount_subtotal=4990, amount_total=4990)],
    }
    values.update(kw)
    return Order.model_validate(values)


def shipping(engine: Engine, data_dir: Path) -> LocalShipping:
    return LocalShipping(engine, LocalFileStore(data_dir), SENDER, "FI", TEMPLATE)


def pdf_text(path: Path) -> str:
    return PdfReader(io.BytesIO(path.read_bytes())).pages[0].extract_text()


def test_creates_tracking_number_and_label(engine: Engine, data_dir: Path) -> None:
    result = shipping(engine, data_dir).create_shipment(make_order())
    assert result.created is True
    assert result.carrier == "local"
    assert is_valid(result.tracking_number)
    assert result.tracking_number.startswith("CP") and result.tracking_number.endswith("FI")
    assert result.tracking_url == f"https://tracking.example/track?id={result.tracking_number}"
    label = data_dir / "labels" / "pi_3Ship.pdf"
    assert result.label.key == "labels/pi_3Ship.pdf"
    assert result.label.path == str(label.resolve())
    assert result.label.url == label.resolve().as_uri()
    text = pdf_text(label)
    assert result.tracking_number in text
    assert "Åsa Öberg-Ståhl" in text
    assert "114 51 Stockholm" in text
    assert "SWEDEN" in text
    assert "Painotalo Pikkuna Oy" in text
    with Session(engine) as session:
        row = session.exec(select(Shipment).where(Shipment.order_id == "pi_3Ship")).one()
    assert row.tracking_number == result.tracking_number
    assert row.label_key == "labels/pi_3Ship.pdf"
    assert result.tracking_number == f"CP{row.id:08d}{result.tracking_number[10]}FI"


def test_repeat_is_idempotent_and_restores_a_missing_label(engine: Engine, data_dir: Path) -> None:
    ship = shipping(engine, data_dir)
    first = ship.create_shipment(make_order())
    label = data_dir / "labels" / "pi_3Ship.pdf"
    original = label.read_bytes()
    label.unlink()
    second = ship.create_shipment(make_order())
    assert second.created is False
    assert second.tracking_number == first.tracking_number
    assert label.read_bytes() == original
    with Session(engine) as session:
        assert len(session.exec(select(Shipment)).all()) == 1


def test_each_order_gets_its_own_number(engine: Engine, data_dir: Path) -> None:
    ship = shipping(engine, data_dir)
    numbers = {ship.create_shipment(make_order(f"pi_{i}")).tracking_number for i in range(3)}
    assert len(numbers) == 3
    assert all(is_valid(n) for n in numbers)
    assert sorted(p.name for p in (data_dir / "labels").iterdir()) == ["pi_0.pdf", "pi_1.pdf", "pi_2.pdf"]


def test_concurrent_calls_book_once(engine: Engine, data_dir: Path) -> None:
    ship = shipping(engine, data_dir)
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: ship.create_shipment(make_order()), range(6)))
    assert len({r.tracking_number for r in results}) == 1
    assert sum(r.created for r in results) == 1


def test_idempotent_on_both_databases(any_db_url: str, data_dir: Path) -> None:
    ship = shipping(get_engine(any_db_url), data_dir)
    first = ship.create_shipment(make_order())
    second = ship.create_shipment(make_order())
    assert (first.created, second.created) == (True, False)
    assert first.tracking_number == second.tracking_number


def test_domestic_label_has_no_country_line(engine: Engine, data_dir: Path) -> None:
    order = make_order(shipping_address=Address(name="Matti Meikäläinen", line1="Mannerheimintie 1",
                                                postal_code="00100", city="Helsinki", country="FI"))
    shipping(engine, data_dir).create_shipment(order)
    text = pdf_text(data_dir / "labels" / "pi_3Ship.pdf")
    assert "00100 Helsinki" in text
    assert "Matti Meikäläinen" in text
    # The sender block prints FINLAND; the recipient block must not add it again.
    assert text.count("FINLAND") == 1


def test_no_shipping_address(engine: Engine, data_dir: Path) -> None:
    with pytest.raises(OrderDataError, match="order pi_3Ship has no shipping address"):
        shipping(engine, data_dir).create_shipment(make_order(shipping_address=None))
    assert not (data_dir / "labels").exists()


def test_incomplete_address_names_the_missing_fields(engine: Engine, data_dir: Path) -> None:
    order = make_order(shipping_address=Address(name="Åsa", line1="Storgatan 1", country="SE"))
    with pytest.raises(OrderDataError) as err:
        shipping(engine, data_dir).create_shipment(order)
    assert "order pi_3Ship has no shipping address: missing postal_code, city" in str(err.value)
    with Session(engine) as session:
        assert session.exec(select(Shipment)).all() == []


def test_check(engine: Engine, data_dir: Path, tmp_path: Path) -> None:
    shipping(engine, data_dir).check()
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(PermanentError, match="local file store: cannot write to"):
        shipping(engine, blocker / "data").check()


def test_file_store_put_is_atomic_and_confined(data_dir: Path) -> None:
    store = LocalFileStore(data_dir)
    stored = store.put("labels/a.pdf", b"%PDF-1", "application/pdf")
    stored = store.put("labels/a.pdf", b"%PDF-2", "application/pdf")
    assert Path(stored.path or "").read_bytes() == b"%PDF-2"
    assert [p.name for p in (data_dir / "labels").iterdir()] == ["a.pdf"]  # no temp files left
    for bad in ("../escape.pdf", "/etc/passwd", "labels/../../x", ""):
        with pytest.raises(PermanentError, match="invalid key"):
            store.put(bad, b"x", "application/pdf")
