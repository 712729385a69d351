"""The shipping label PDF: text a person and a scanner can read."""

from __future__ import annotations

import io

from pypdf import PdfReader
from reportlab.lib.pagesizes import A6

from orderpipe.shipping.label import render_label

SENDER = ["Painotalo Pikkuna Oy", "Tehtaankatu 12", "00140 Helsinki", "FINLAND"]
RECIPIENT = ["Åsa Öberg-Ståhl", "Storgatan 1", "114 51 Stockholm", "SWEDEN"]


def _render(**kw: object) -> bytes:
    args: dict[str, object] = {
        "tracking_number": "CP000000014FI",
        "sender_lines": SENDER,
        "recipient_lines": RECIPIENT,
        "order_id": "pi_3Label",
    }
    args.update(kw)
    return render_label(**args)  # type: ignore[arg-type]


def _text(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 1
    return reader.pages[0].extract_text()


def test_label_has_tracking_number_recipient_and_sender() -> None:
    pdf = _render(weight_grams=1250, notes="Fragile")
    assert pdf.startswith(b"%PDF")
    text = _text(pdf)
    assert "CP000000014FI" in text
    for line in RECIPIENT + SENDER:
        assert line in text
    assert "pi_3Label" in text
    assert "1.250 kg" in text
    assert "Fragile" in text


def test_label_is_a6() -> None:
    page = PdfReader(io.BytesIO(_render())).pages[0]
    assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == tuple(round(x) for x in A6)


def test_label_bytes_are_deterministic() -> None:
    assert _render() == _render()


def test_label_contains_a_barcode_drawing() -> None:
    # Code 128 bars are filled rectangles in the page content stream: many of them.
    content = PdfReader(io.BytesIO(_render())).pages[0].get_contents()
    assert content is not None
    assert content.get_data().count(b" re") > 30


def test_cjk_and_long_lines_do_not_crash() -> None:
    recipient = ["山田 太郎", "東京都千代田区丸の内1-1-1", "100-0001 Tokyo", "JAPAN"] + [f"Line {i}" for i in range(10)]
    pdf = _render(recipient_lines=recipient, sender_lines=["X" * 300])
    text = _text(pdf)
    assert "100-0001 Tokyo" in text
    assert "Line 9" in text
    assert "CP000000014FI" in text
