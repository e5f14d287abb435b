"""PDF loader (pypdf for the text layer, OCR for scanned pages): one section per page with text, from 1.

Tables laid out on a page (a statement's rows of figures) are found from pypdf's layout mode and written
as Markdown tables (knowledge.loaders.pdf_tables); the rest of such a page keeps its words in layout order.

A page whose text layer is missing or negligible for its area (a scan, or a scan under a one-line
"Page n of m" stamp) is rendered with pypdfium2 and recognised (knowledge.ocr) when OCR is "auto" and
the page holds an image, or always when OCR is "force". With OCR "off" such pages are not silently
indexed as if their stamp were their content: they become warnings ("no text layer; OCR is off").
"""
from __future__ import annotations

import io
import logging
import re

from pypdf import PasswordType, PdfReader

from knowledge.loaders.ocr_pages import OcrPass
from knowledge.loaders.pdf_tables import may_hold_table, text_with_tables
from knowledge.types import IngestError, ParsedDocument, Section

log = logging.getLogger(__name__)


def _clean(text: str) -> str:
    """Drop the trailing spaces pypdf leaves on most lines, NULs and runs of blank lines."""
    lines = [line.rstrip() for line in text.replace("\x00", "").splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _open(data: bytes, name: str) -> PdfReader:
    """Open and, where possible, decrypt the PDF; map every failure to an IngestError."""
    try:
        reader = PdfReader(io.BytesIO(data))
    except Exception as exc:  # pypdf raises many types (PdfReadError, ValueError, KeyError...)
        raise IngestError("corrupt_file", f"{name} is not a readable PDF: {exc}", name=name) from exc
    if reader.is_encrypted:
        # Many PDFs are encrypted only to restrict printing/copying, with an empty user password;
        # those open for reading without asking anyone for anything.
        try:
            result = reader.decrypt("")
        except Exception as exc:  # unsupported algorithm, broken /Encrypt dictionary
            raise IngestError("encrypted", f"{name} is encrypted and cannot be opened: {exc}", name=name) from exc
        if result == PasswordType.NOT_DECRYPTED:
            raise IngestError("encrypted", f"{name} is password-protected; upload a copy without a password",
                              name=name)
    return reader


def _area_sq_in(page) -> float:
    """A page's area in square inches (PDF units are 1/72 inch); letter size when the box is unreadable."""
    try:
        box = page.mediabox
        return max(abs(float(box.width) * float(box.height)) / (72 * 72), 1.0)
    except Exception:
        return 8.5 * 11


def _with_tables(page, text: str, number: int, name: str) -> tuple[str, bool]:
    """The page's text with its tables as Markdown (from pypdf's layout mode), when it has any."""
    if not may_hold_table(text):
        return text, False
    try:
        tabled = text_with_tables(page.extract_text(extraction_mode="layout") or "")
    except Exception as exc:  # layout mode has its own failure modes; the plain text is still good
        log.warning("layout extraction failed on page %d of %s: %s", number, name, exc)
        return text, False
    return (_clean(tabled), True) if tabled else (text, False)


def _title(reader: PdfReader) -> str | None:
    try:
        title = reader.metadata.title if reader.metadata else None
    except Exception:  # a broken /Info dictionary must not cost us the document
        return None
    return title.strip() if isinstance(title, str) and title.strip() else None


class PdfLoader:
    """PDF files. Pages without extractable text (scans, blank pages) are skipped, not errors."""

    extensions = (".pdf",)

    def run(self, data: bytes, name: str, ocr_mode: str = "auto", on_page=None) -> ParsedDocument:
        """Extract the text of each page as a Section with its 1-based ``page``.

        ``ocr_mode``: "auto" (recognise pages with an image and next to no text), "force" (every page) or
        "off"; ``on_page()`` is called after each OCR'd page. OCR'd sections carry ``ocr: True`` and
        ``ocr_confidence``; low-confidence pages and pages left unread with OCR off are listed in
        ``warnings``. Raises IngestError ``corrupt_file``
        (unreadable or truncated), ``encrypted`` (needs a password) or ``no_text`` (no page has text;
        details: page_count).
        """
        reader = _open(data, name)
        try:
            pages = list(reader.pages)  # resolves the page tree: where truncation usually shows
        except Exception as exc:
            raise IngestError("corrupt_file", f"{name} is damaged or truncated: {exc}", name=name) from exc
        sections: list[Section] = []
        failed: list[int] = []
        scans = OcrPass(data, name, ocr_mode, on_page)
        for number, page in enumerate(pages, start=1):
            try:
                text = _clean(page.extract_text() or "")
            except Exception as exc:  # one broken content stream should not lose the other pages
                log.warning("text extraction failed on page %d of %s: %s", number, name, exc)
                failed.append(number)
                text = ""
            text, has_table = _with_tables(page, text, number, name)
            section = scans.page(number, text, _area_sq_in(page))
            if section is not None:
                if has_table and not section.metadata.get("ocr"):
                    section.metadata["tables"] = True
                sections.append(section)
        failed = [n for n in failed if not any(s.page == n for s in sections)]
        page_count = len(pages)
        if not sections:
            if failed:
                raise IngestError("corrupt_file", f"{name}: text extraction failed on every page",
                                  name=name, page_count=page_count, failed_pages=failed)
            if scans.unread_pages:
                raise IngestError("no_text", f"{name} has no text layer; OCR is off for this source",
                                  name=name, page_count=page_count, pages=scans.unread_pages)
            raise IngestError("no_text", f"{name} has no extractable text, and OCR found none",
                              name=name, page_count=page_count)
        metadata = {"failed_pages": failed} if failed else {}
        metadata.update(scans.summary())
        return ParsedDocument(sections=sections, title=_title(reader), mime_type="application/pdf",
                              page_count=page_count, metadata=metadata, warnings=scans.warnings)
