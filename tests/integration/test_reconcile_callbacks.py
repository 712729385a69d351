"""Reconciliation re-sends status callbacks the shop never acknowledged, once each."""

from __future__ import annotations

from pathlib import Path

import pytest

from orderpipe.bootstrap import build_services
from orderpipe.db import get_engine
from orderpipe.orders import ledger
from orderpipe.orders.reconciliation import Report, resend_callbacks
from orderpipe.settings import load_settings
from orderpipe.tables import utcnow
from tests.standins.shop_callback import ShopCallbackStandIn
from tests.standins.stripe import STANDIN_KEY


def test_unacknowledged_callbacks_are_sent_once(monkeypatch: pytest.MonkeyPatch, sqlite_url: str,
                                                 data_dir: Path) -> None:
    engine = get_engine(sqlite_url)
    for order_id, state in (("pi_3Done", "completed"), ("pi_3Broke", "failed")):
        ledger.record_missing_order(engine, order_id, source="test")
        ledger.set_order_state(engine, order_id, state, tracking_number="CP000000014FI", invoice_number="2026-1")
    ledger.set_step(engine, "pi_3Broke", "shipment", "failed", "no shipping address")
    with ShopCallbackStandIn(secret="cb_reconcile_secret") as shop:
        for key, value in {"DATABASE_URL": sqlite_url, "ORDERPIPE_DATA_DIR": str(data_dir),
                           "STRIPE_API_KEY": STANDIN_KEY, "ORDERPIPE_STATUS_CALLBACK_URL": shop.callback_url,
                           "ORDERPIPE_STATUS_CALLBACK_SECRET": "cb_reconcile_secret"}.items():
            monkeypatch.setenv(key, value)
        svc = build_services(load_settings())
        since = utcnow().replace(year=utcnow().year - 1)
        first, second = Report(), Report()
        resend_callbacks(svc, since, first)
        resend_callbacks(svc, since, second)
        bodies = {d.body["order_id"]: d.body for d in shop.deliveries}
    assert sorted(first.callbacks_sent) == ["pi_3Broke", "pi_3Done"] and second.callbacks_sent == []
    assert bodies["pi_3Done"]["status"] == "fulfilled" and bodies["pi_3Done"]["failed_step"] is None
    assert bodies["pi_3Broke"]["status"] == "failed" and bodies["pi_3Broke"]["failed_step"] == "shipment"
    assert len(shop.deliveries) == 2
