"""PDF loader, on the real sample PDFs and PDFs derived from them with pypdf's writer."""
from __future__ import annotations

import pytest

from knowledge.loaders import load_document
from knowledge.loaders.pdf import PdfLoader
from knowledge.types import IngestError


def _error(data: bytes, name: str) -> IngestError:
    with pytest.raises(IngestError) as info:
        load_document(data, name)
    return info.value


def test_pdf_encrypted_with_empty_password_opens_with_pages(pdf_bytes):
    doc = load_document(pdf_bytes("598us1r3_j4ek.pdf"), "598us1r3_j4ek.pdf")
    assert doc.page_count == 24
    assert [s.page for s in doc.sections] == list(range(1, 25))
    assert "PRELIMINARY PRINT" in doc.sections[0].text
    assert "CRUZ v. ARIZONA" in doc.sections[1].text and "Syllabus" in doc.sections[1].text
    assert "Reporter’s Note" in doc.sections[23].text
    assert doc.mime_type == "application/pdf"


def test_pdf_other_samples(pdf_bytes):
    helix = load_document(pdf_bytes("598us1r4_1a7d.pdf"), "helix.pdf")
    assert helix.page_count == 32 and len(helix.sections) == 32
    assert "HELIX ENERGY SOLUTIONS GROUP" in helix.sections[1].text
    bank = load_document(pdf_bytes("bank_statement.pdf"), "bank_statement.pdf")
    assert bank.page_count == 1 and bank.sections[0].page == 1
    assert "Account number: 99988877" in bank.sections[0].text
    assert not any(line != line.rstrip() for line in bank.sections[0].text.splitlines())


def test_pdf_aes256_with_empty_user_password_opens(encrypted_pdf, pdf_bytes):
    data = encrypted_pdf(user_password="")
    assert b"/AESV3" in data  # really AES-256
    doc = load_document(data, "statement.pdf")
    plain = load_document(pdf_bytes("bank_statement.pdf"), "bank_statement.pdf")
    assert doc.text == plain.text and doc.page_count == 1


def test_pdf_with_user_password_is_rejected(encrypted_pdf):
    err = _error(encrypted_pdf(user_password="s3cret"), "locked.pdf")
    assert err.code == "encrypted"
    assert "password" in err.message


@pytest.mark.parametrize("fraction", [0.9, 0.5, 0.05])
def test_truncated_pdf_is_corrupt(pdf_bytes, fraction):
    data = pdf_bytes("bank_statement.pdf")
    assert _error(data[: int(len(data) * fraction)], "cut.pdf").code == "corrupt_file"


@pytest.mark.parametrize("pages", [1, 3])
def test_pdf_without_text_reports_page_count(blank_pdf, pages):
    err = _error(blank_pdf(pages), "scan.pdf")
    assert err.code == "no_text"
    assert err.details["page_count"] == pages


def test_pdf_pages_without_text_are_skipped(pdf_with_blank_page):
    doc = PdfLoader().run(pdf_with_blank_page, "excerpt.pdf")
    assert doc.page_count == 3
    assert [s.page for s in doc.sections] == [1, 3]
    assert "OCTOBER TERM, 2022 17" in doc.sections[0].text
    assert "18 CRUZ v. ARIZONA" in doc.sections[1].text
