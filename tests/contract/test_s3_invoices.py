"""Invoices through the S3 file store (moto's S3 server): PDF and UBL under
ORDERPIPE_S3_INVOICE_PREFIX, read back by another machine, and the email attaches those bytes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from sqlalchemy import Engine

from orderpipe.connectors.base import ShipmentResult, StoredFile
from orderpipe.connectors.file_store_local import LocalFileStore
from orderpipe.connectors.file_store_s3 import S3FileStore
from orderpipe.email.render import render_confirmation
from orderpipe.errors import PermanentError
from orderpipe.invoicing.local import LocalInvoicing
from orderpipe.settings import load_settings
from tests.standins.s3 import MotoS3
from tests.unit.invoice_samples import SELLER, consumer_fi

REGION = "eu-north-1"
PREFIX = "shop-a/invoices/"


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[MotoS3]:
    with MotoS3() as server:
        yield server


@pytest.fixture
def bucket(moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Any]:
    name = f"orderpipe-inv-{uuid.uuid4().hex[:12]}"
    for key, value in {"ORDERPIPE_FILE_STORE": "s3", "ORDERPIPE_S3_BUCKET": name, "AWS_ENDPOINT_URL_S3": moto_s3.url,
                       "AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret",
                       "ORDERPIPE_S3_INVOICE_PREFIX": PREFIX}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    admin = boto3.client("s3", endpoint_url=moto_s3.url, region_name=REGION)
    admin.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return name, admin


def keys(bucket: tuple[str, Any]) -> list[str]:
    name, admin = bucket
    return sorted(o["Key"] for o in admin.list_objects_v2(Bucket=name).get("Contents", []))


def body(bucket: tuple[str, Any], key: str) -> bytes:
    name, admin = bucket
    return bytes(admin.get_object(Bucket=name, Key=key)["Body"].read())


def invoicing(engine: Engine, files: Any) -> LocalInvoicing:
    return LocalInvoicing(engine, files, SELLER, Decimal("25.5"), today=lambda: date(2026, 5, 4))


def test_invoice_pdf_and_ubl_land_in_the_bucket_under_the_invoice_prefix(
    engine: Engine, bucket: tuple[str, Any], data_dir: Path
) -> None:
    result = invoicing(engine, S3FileStore(load_settings())).create_invoice(consumer_fi())

    number = result.invoice_number
    assert keys(bucket) == [f"{PREFIX}{number}.pdf", f"{PREFIX}{number}.xml"]
    assert body(bucket, f"{PREFIX}{number}.pdf").startswith(b"%PDF")
    assert f"<cbc:ID>{number}</cbc:ID>".encode() in body(bucket, f"{PREFIX}{number}.xml")
    name, admin = bucket
    assert admin.head_object(Bucket=name, Key=f"{PREFIX}{number}.xml")["ContentType"] == "application/xml"
    assert (result.pdf_key, result.xml_key) == (f"invoices/{number}.pdf", f"invoices/{number}.xml")
    assert result.pdf_path is None and result.xml_path is None
    assert not (data_dir / "invoices").exists()  # nothing on this machine's disk


def test_another_machine_rewrites_only_a_missing_file_and_gets_the_same_invoice(
    engine: Engine, bucket: tuple[str, Any]
) -> None:
    first = invoicing(engine, S3FileStore(load_settings())).create_invoice(consumer_fi())
    number = first.invoice_number
    xml_before = body(bucket, f"{PREFIX}{number}.xml")
    name, admin = bucket
    admin.delete_object(Bucket=name, Key=f"{PREFIX}{number}.pdf")  # a crash between commit and upload

    again = invoicing(engine, S3FileStore(load_settings())).create_invoice(consumer_fi())
    assert again.invoice_number == number and again.created is False
    assert keys(bucket) == [f"{PREFIX}{number}.pdf", f"{PREFIX}{number}.xml"]
    assert body(bucket, f"{PREFIX}{number}.pdf").startswith(b"%PDF")
    assert body(bucket, f"{PREFIX}{number}.xml") == xml_before


def test_the_email_attaches_the_buckets_invoice_bytes(engine: Engine, bucket: tuple[str, Any]) -> None:
    order = consumer_fi()
    store = S3FileStore(load_settings())
    invoice = invoicing(engine, store).create_invoice(order)
    in_bucket = body(bucket, f"{PREFIX}{invoice.invoice_number}.pdf")
    shipment = ShipmentResult(tracking_number="JJFI12345678901234567", carrier="postnord",
                              tracking_url="https://track.example/1", created=True,
                              label=StoredFile(key=f"labels/{order.order_id}.pdf"))

    other_machine = S3FileStore(load_settings())
    rendered = render_confirmation(order, shipment, invoice, sender="Shop <orders@shop.example>", seller_name="Shop",
                                   reply_to=None, files=other_machine)
    [attachment] = list(rendered.message.iter_attachments())
    assert attachment.get_filename() == f"{invoice.invoice_number}.pdf"
    assert attachment.get_payload(decode=True) == in_bucket

    name, admin = bucket
    admin.delete_object(Bucket=name, Key=f"{PREFIX}{invoice.invoice_number}.pdf")
    with pytest.raises(PermanentError, match=f"order {order.order_id}: cannot read invoice PDF .*NoSuchKey"):
        render_confirmation(order, shipment, invoice, sender="Shop <orders@shop.example>", seller_name="Shop",
                            reply_to=None, files=other_machine)


def test_the_local_store_keeps_the_contract_paths(engine: Engine, data_dir: Path) -> None:
    result = invoicing(engine, LocalFileStore(data_dir)).create_invoice(consumer_fi())
    number = result.invoice_number
    assert result.pdf_path == str((data_dir / "invoices" / f"{number}.pdf").resolve())
    assert result.xml_path == str((data_dir / "invoices" / f"{number}.xml").resolve())
    assert result.pdf_key == f"invoices/{number}.pdf"
    assert LocalFileStore(data_dir).get(result.pdf_key) == (data_dir / "invoices" / f"{number}.pdf").read_bytes()
