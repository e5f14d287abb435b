"""Fixtures for the ingestion engine tests (real sample PDFs and PDFs derived from them) and the lexical
index suites (one real database engine per implementation)."""
from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter
from sqlalchemy import create_engine

from knowledge.stores import make_lexical_index
from tests.knowledge.store_suite import POSTGRES_URL, unique_name

PDF_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "pdf"

# Real documents: two US Supreme Court preliminary prints (RC4-encrypted with an empty user
# password, as published) and a one-page bank statement.
CRUZ = "598us1r3_j4ek.pdf"  # 24 pages
HELIX = "598us1r4_1a7d.pdf"  # 32 pages
BANK = "bank_statement.pdf"  # 1 page, not encrypted


@pytest.fixture
def pdf_bytes() -> Callable[[str], bytes]:
    """Read one of the committed sample PDFs."""
    return lambda name: (PDF_DIR / name).read_bytes()


def _write(writer: PdfWriter) -> bytes:
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


@pytest.fixture
def encrypted_pdf(pdf_bytes) -> Callable[..., bytes]:
    """The bank statement re-encrypted with AES-256 and the given user/owner passwords."""

    def build(user_password: str, owner_password: str = "owner-secret") -> bytes:
        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(BANK))))
        writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm="AES-256")
        return _write(writer)

    return build


@pytest.fixture
def blank_pdf() -> Callable[[int], bytes]:
    """A PDF of ``n`` blank pages: valid, but without any text."""

    def build(n: int = 1) -> bytes:
        writer = PdfWriter()
        for _ in range(n):
            writer.add_blank_page(width=612, height=792)
        return _write(writer)

    return build


@pytest.fixture
def pdf_with_blank_page(pdf_bytes) -> bytes:
    """Pages 2 and 3 of the Cruz print with a blank page between them (text on pages 1 and 3)."""
    reader = PdfReader(io.BytesIO(pdf_bytes(CRUZ)))
    reader.decrypt("")
    writer = PdfWriter()
    writer.add_page(reader.pages[1])
    writer.add_blank_page(width=612, height=792)
    writer.add_page(reader.pages[2])
    return _write(writer)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def lexical_engine(request, tmp_path_factory):
    """A real database for lexical indexes: SQLite always, PostgreSQL in the `postgres` pass."""
    if request.param == "postgresql":
        assert POSTGRES_URL, "MAGNET_TEST_POSTGRES_URL is not set: run with -m 'not postgres'"
        engine = create_engine(POSTGRES_URL)
    else:
        engine = create_engine(f"sqlite:///{tmp_path_factory.mktemp('lexical') / 'magnet.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def index(lexical_engine):
    """An empty lexical index of the engine's dialect, dropped afterwards."""
    idx = make_lexical_index(lexical_engine, unique_name("lex"))
    yield idx
    idx.drop()
