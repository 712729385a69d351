"""Migration 0003: the PostNord booking journal table the migrations create is the model's."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

from orderpipe.db import get_engine


def test_migrations_create_the_journal_table_as_modelled(any_db_url: str) -> None:
    engine = get_engine(any_db_url)
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() is not None
        diffs = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    journal_diffs = [d for d in diffs if "postnord_bookings" in repr(d)]
    assert journal_diffs == []
    columns = {c["name"]: c for c in inspect(engine).get_columns("postnord_bookings")}
    assert set(columns) == {"order_id", "item_id", "tracking_url", "booking_id", "label_b64", "booked_at",
                            "updated_at"}
    assert columns["label_b64"]["nullable"] and not columns["item_id"]["nullable"]
    assert inspect(engine).get_pk_constraint("postnord_bookings")["constrained_columns"] == ["order_id"]
