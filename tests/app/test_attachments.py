"""Attachments sent with a message: base64 decoded strictly, read by the ingestion loaders, or refused."""
from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from pypdf import PdfWriter

from app.errors import BadRequest
from app.services.attachments import (
    DEFAULT_MAX_ATTACHMENT_BYTES,
    DEFAULT_MAX_ATTACHMENTS,
    ExtractedAttachment,
    extract_attachments,
)
from knowledge.tokenizer import count_tokens

BANK_PDF = Path(__file__).resolve().parents[1] / "fixtures" / "pdf" / "bank_statement.pdf"
LIMITS = {"max_bytes": DEFAULT_MAX_ATTACHMENT_BYTES, "max_count": DEFAULT_MAX_ATTACHMENTS}


def item(filename: str, data: bytes, content_type: str | None = None) -> dict:
    body = {"filename": filename, "data": base64.b64encode(data).decode()}
    if content_type:
        body["content_type"] = content_type
    return body


def rejected(items: list[dict], **limits) -> BadRequest:
    with pytest.raises(BadRequest) as err:
        extract_attachments(items, **{**LIMITS, **limits})
    assert err.value.code == "invalid_request" and err.value.status == 400
    assert set(err.value.details) >= {"attachment", "filename", "reason"}
    return err.value


def test_defaults():
    assert DEFAULT_MAX_ATTACHMENT_BYTES == 5 * 1024 * 1024 and DEFAULT_MAX_ATTACHMENTS == 5


def test_text_markdown_and_pdf_are_extracted_in_order():
    note = "Refunds are processed within fourteen days.\nContact billing for help.\n"
    markdown = "# Shipping\n\nParcels ship within **three** working days.\n"
    pdf = BANK_PDF.read_bytes()
    found = extract_attachments(
        [item("note.txt", note.encode()), item("shipping.md", markdown.encode(), "text/markdown"),
         item("statement.pdf", pdf, "application/pdf")],
        **LIMITS,
    )
    assert [a.filename for a in found] == ["note.txt", "shipping.md", "statement.pdf"]
    assert all(isinstance(a, ExtractedAttachment) for a in found)

    txt, md, statement = found
    assert txt.text == note.strip() and txt.size_bytes == len(note.encode())
    assert txt.content_type == "text/plain" and txt.tokens == count_tokens(txt.text) > 0
    assert "Parcels ship within" in md.text and "three" in md.text and md.content_type == "text/markdown"
    assert statement.content_type == "application/pdf" and statement.size_bytes == len(pdf)
    assert "Account number: 99988877" in statement.text and statement.tokens == count_tokens(statement.text)


def test_data_url_prefix_and_wrapped_base64_are_accepted():
    data = b"Line one of the attachment.\n" * 20
    encoded = base64.b64encode(data).decode()
    wrapped = "\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))  # MIME line length
    found = extract_attachments(
        [{"filename": "a.txt", "data": "data:text/plain;base64," + encoded},
         {"filename": "b.txt", "data": wrapped}],
        **LIMITS,
    )
    assert [a.size_bytes for a in found] == [len(data), len(data)]
    assert found[0].text == data.decode().strip()


def test_name_without_extension_uses_the_content_type():
    found = extract_attachments([item("README", b"# Title\n\nHello there.", "text/markdown")], **LIMITS)
    assert "Hello there." in found[0].text


def test_no_attachments_is_an_empty_list():
    assert extract_attachments([], **LIMITS) == []


def test_too_many_files():
    err = rejected([item(f"f{i}.txt", b"text") for i in range(3)], max_count=2)
    assert err.details["reason"] == "too_many" and err.details["attachment"] == 2
    assert "2" in err.message


def test_file_over_the_limit_is_refused_without_decoding():
    err = rejected([item("ok.txt", b"fine"), item("big.txt", b"x" * 2048)], max_bytes=1024)
    assert err.details == {"attachment": 1, "filename": "big.txt", "reason": "too_large",
                           "size_bytes": 2048, "max_bytes": 1024}
    assert "big.txt" in err.message
    # a payload far over the limit is refused on its length alone, even if it is not base64 at all
    err = rejected([{"filename": "huge.txt", "data": "!" * 10_000}], max_bytes=1024)
    assert err.details["reason"] == "too_large"


def test_file_exactly_at_the_limit_is_accepted():
    assert extract_attachments([item("edge.txt", b"y" * 1024)], max_bytes=1024, max_count=1)[0].size_bytes == 1024


@pytest.mark.parametrize("data", ["not base64!!", "YWJj=ZGVm", "YWJjZ", "data:text/plain,hello"])
def test_bad_base64(data):
    err = rejected([{"filename": "bad.txt", "data": data}])
    assert err.details == {"attachment": 0, "filename": "bad.txt", "reason": "invalid_base64"}
    assert "bad.txt" in err.message


def test_unsupported_type():
    exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(range(256))
    err = rejected([item("setup.exe", exe, "application/octet-stream")])
    assert err.details["reason"] == "unsupported_type" and err.details["filename"] == "setup.exe"
    assert "setup.exe" in err.message


def test_binary_bytes_named_as_text():
    err = rejected([item("photo.txt", b"\x89PNG\r\n\x1a\n" + bytes(200))])
    assert err.details["reason"] == "binary_content"


def test_corrupt_pdf():
    truncated = BANK_PDF.read_bytes()[:5000]
    err = rejected([item("note.txt", b"fine"), item("cut.pdf", truncated, "application/pdf")])
    assert err.details["attachment"] == 1 and err.details["reason"] == "corrupt_file"
    assert "cut.pdf" in err.message


def test_pdf_without_text():
    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    buf = io.BytesIO()
    writer.write(buf)
    err = rejected([item("scan.pdf", buf.getvalue())])
    assert err.details["reason"] == "no_text" and "scan.pdf" in err.message


@pytest.mark.parametrize("data", [b"   \n\n\t  ", b"\n"])
def test_text_file_without_text(data):
    assert rejected([item("blank.txt", data)]).details["reason"] == "no_text"


def test_empty_data_and_missing_filename():
    assert rejected([{"filename": "nothing.txt", "data": ""}]).details["reason"] == "empty"
    assert rejected([{"filename": "nothing.txt", "data": "data:text/plain;base64,"}]).details["reason"] == "empty"
    assert rejected([{"data": base64.b64encode(b"hi").decode()}]).details["reason"] == "missing_filename"
