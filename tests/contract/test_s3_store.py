"""S3FileStore against moto's S3 server (and S3 XML errors from a tiny stand-in)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest

from orderpipe.connectors.file_store_s3 import PRESIGN_SECONDS, S3FileStore
from orderpipe.errors import PermanentError, TransientError
from orderpipe.settings import Settings, load_settings
from tests.conftest import free_port
from tests.standins.s3 import MotoS3, S3ErrorStandIn

PDF = b"%PDF-1.4\n% orderpipe test label\n%%EOF\n"
REGION = "eu-north-1"


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[MotoS3]:
    with MotoS3() as server:
        yield server


@pytest.fixture
def bucket() -> str:
    return f"orderpipe-{uuid.uuid4().hex[:12]}"


def configure(monkeypatch: pytest.MonkeyPatch, endpoint: str, bucket: str, prefix: str | None = None) -> Settings:
    env = {"ORDERPIPE_FILE_STORE": "s3", "ORDERPIPE_S3_BUCKET": bucket, "AWS_ENDPOINT_URL_S3": endpoint,
           "AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret"}
    if prefix is not None:
        env["ORDERPIPE_S3_PREFIX"] = prefix
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return load_settings()


@pytest.fixture
def admin(moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A plain boto3 client, to set up and inspect the bucket behind the store's back."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    return boto3.client("s3", endpoint_url=moto_s3.url, region_name=REGION)


@pytest.fixture
def store(moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch, admin: Any, bucket: str) -> S3FileStore:
    admin.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    return S3FileStore(configure(monkeypatch, moto_s3.url, bucket))


def test_put_stores_bytes_with_content_type_and_a_working_presigned_url(
    store: S3FileStore, admin: Any, bucket: str
) -> None:
    stored = store.put("labels/pi_3S3a.pdf", PDF, "application/pdf")

    assert stored.key == "labels/pi_3S3a.pdf" and stored.path is None
    head = admin.head_object(Bucket=bucket, Key="labels/pi_3S3a.pdf")
    assert head["ContentType"] == "application/pdf" and head["ContentLength"] == len(PDF)
    assert head["Metadata"] == {"orderpipe-key": "labels/pi_3S3a.pdf"}
    assert stored.url is not None and f"/{bucket}/labels/pi_3S3a.pdf" in stored.url  # path style
    assert f"X-Amz-Expires={PRESIGN_SECONDS}" in stored.url
    response = httpx.get(stored.url, timeout=10)
    assert response.status_code == 200 and response.content == PDF
    assert response.headers["content-type"] == "application/pdf"


def test_same_key_twice_keeps_one_object(store: S3FileStore, admin: Any, bucket: str) -> None:
    store.put("labels/pi_3S3a.pdf", PDF, "application/pdf")
    store.put("labels/pi_3S3a.pdf", PDF, "application/pdf")
    keys = [o["Key"] for o in admin.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["labels/pi_3S3a.pdf"]


def test_prefix_replaces_the_folder_of_the_key(
    moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch, admin: Any, bucket: str
) -> None:
    admin.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    monkeypatch.setenv("ORDERPIPE_S3_INVOICE_PREFIX", "shop-a/invoices/")
    store = S3FileStore(configure(monkeypatch, moto_s3.url, bucket, prefix="shop-a/labels/"))
    label = store.put("labels/pi_3S3a.pdf", PDF, "application/pdf")
    invoice = store.put("invoices/2026-000001.pdf", PDF, "application/pdf")
    assert admin.get_object(Bucket=bucket, Key="shop-a/labels/pi_3S3a.pdf")["Body"].read() == PDF
    assert admin.get_object(Bucket=bucket, Key="shop-a/invoices/2026-000001.pdf")["Body"].read() == PDF
    assert (label.key, invoice.key) == ("labels/pi_3S3a.pdf", "invoices/2026-000001.pdf")
    with pytest.raises(PermanentError, match="invalid key"):
        store.put("labels/", PDF, "application/pdf")


def test_invoices_default_to_the_invoices_prefix(store: S3FileStore, admin: Any, bucket: str) -> None:
    store.put("invoices/2026-000001.pdf", PDF, "application/pdf")
    store.put("invoices/2026-000001.xml", b"<Invoice/>", "application/xml")
    keys = sorted(o["Key"] for o in admin.list_objects_v2(Bucket=bucket).get("Contents", []))
    assert keys == ["invoices/2026-000001.pdf", "invoices/2026-000001.xml"]
    assert admin.head_object(Bucket=bucket, Key="invoices/2026-000001.xml")["ContentType"] == "application/xml"


def test_get_and_exists_read_back_what_another_store_instance_put(
    moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch, store: S3FileStore, bucket: str
) -> None:
    store.put("invoices/2026-000002.pdf", PDF, "application/pdf")
    other = S3FileStore(configure(monkeypatch, moto_s3.url, bucket))  # another machine, same bucket
    assert other.exists("invoices/2026-000002.pdf") is True
    assert other.get("invoices/2026-000002.pdf") == PDF
    assert other.exists("invoices/2026-999999.pdf") is False
    with pytest.raises(PermanentError, match=f"S3 get s3://{bucket}/invoices/2026-999999.pdf: NoSuchKey"):
        other.get("invoices/2026-999999.pdf")


def test_check_heads_the_bucket_and_writes_nothing(store: S3FileStore, admin: Any, bucket: str) -> None:
    store.check()
    assert admin.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_missing_bucket_is_permanent(moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch, admin: Any) -> None:
    store = S3FileStore(configure(monkeypatch, moto_s3.url, "no-such-bucket-here"))
    with pytest.raises(PermanentError, match="S3 check of bucket no-such-bucket-here: 404"):
        store.check()
    with pytest.raises(PermanentError, match="NoSuchBucket"):
        store.put("labels/pi_x.pdf", PDF, "application/pdf")


@pytest.mark.parametrize(("code", "status", "error"), [
    ("SlowDown", 503, TransientError),
    ("InternalError", 500, TransientError),
    ("AccessDenied", 403, PermanentError),
    ("NoSuchBucket", 404, PermanentError),
])
def test_s3_errors_are_classified(
    monkeypatch: pytest.MonkeyPatch, code: str, status: int, error: type[Exception]
) -> None:
    with S3ErrorStandIn(code, status) as standin:
        store = S3FileStore(configure(monkeypatch, standin.url, "bucket1"), max_attempts=1)
        with pytest.raises(error, match=f"S3 put s3://bucket1/labels/pi_x.pdf: {code} \\(HTTP {status}\\)") as exc:
            store.put("labels/pi_x.pdf", PDF, "application/pdf")
        [req] = standin.requests
    assert (req.method, req.path) == ("PUT", "/bucket1/labels/pi_x.pdf")
    assert req.headers["content-type"] == "application/pdf" and req.body == PDF  # plain body, not aws-chunked
    assert "testing-secret" not in str(exc.value)


def test_unreachable_endpoint_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    store = S3FileStore(configure(monkeypatch, f"http://127.0.0.1:{free_port()}", "labels"), max_attempts=1,
                        connect_timeout=1)
    with pytest.raises(TransientError, match="S3 check of bucket labels"):
        store.check()


def test_link_presigns_an_invoice_for_the_order_artifact(store: S3FileStore, admin: Any, bucket: str) -> None:
    from orderpipe.artifact import file_link

    store.put("invoices/2026-000042.pdf", PDF, "application/pdf")
    url = file_link(store, "invoices/2026-000042.pdf")  # computed without a request, fresh on every run
    assert url is not None and f"/{bucket}/invoices/2026-000042.pdf" in url and "X-Amz-Signature=" in url
    assert httpx.get(url, timeout=10).content == PDF


def test_list_objects_reads_every_page_and_delete_objects_every_batch(
    store: S3FileStore, admin: Any, bucket: str
) -> None:
    """Retention's two calls: ListObjectsV2 followed page by page, DeleteObjects in batches."""
    keys = [f"labels/pi_3Page{i:02d}.pdf" for i in range(7)]
    for key in keys:
        admin.put_object(Bucket=bucket, Key=key, Body=PDF)
    admin.put_object(Bucket=bucket, Key="invoices/2026-000001.pdf", Body=PDF)
    store.list_page_size, store.delete_batch = 3, 2  # 3 pages, 3 requests

    listed = list(store.list_objects("labels/"))
    assert sorted(o.key for o in listed) == keys
    assert all(o.last_modified.tzinfo is not None for o in listed)
    assert store.delete_objects(keys[:5]) == 5
    assert sorted(o["Key"] for o in admin.list_objects_v2(Bucket=bucket).get("Contents", [])) == [
        "invoices/2026-000001.pdf", *keys[5:]]


def test_delete_objects_refuses_invoice_objects_before_sending_anything(
    store: S3FileStore, admin: Any, bucket: str
) -> None:
    for key in ("labels/pi_3Keep.pdf", "invoices/2026-000001.pdf", "invoices/CN-2026-000001.xml"):
        admin.put_object(Bucket=bucket, Key=key, Body=PDF)
    with pytest.raises(PermanentError, match="refusing to delete invoice objects invoices/2026-000001.pdf"):
        store.delete_objects(["labels/pi_3Keep.pdf", "invoices/2026-000001.pdf"])
    with pytest.raises(PermanentError, match="CN-2026-000001.xml"):
        store.delete_objects(["invoices/CN-2026-000001.xml"])
    assert admin.list_objects_v2(Bucket=bucket)["KeyCount"] == 3


def test_list_objects_of_a_missing_bucket_is_permanent(
    moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch, admin: Any
) -> None:
    store = S3FileStore(configure(monkeypatch, moto_s3.url, "no-such-bucket-here"))
    with pytest.raises(PermanentError, match="S3 list s3://no-such-bucket-here/labels/: NoSuchBucket"):
        list(store.list_objects("labels/"))
