"""Scans and images through real OCR (rapidocr's bundled PP-OCR models), and Office files with tables.

Fixtures are committed, made by tests/fixtures/documents/make_fixtures.py: the phrases searched for here
exist only in the pixels of the scans and images.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from knowledge import ocr
from knowledge.chunkers import RecursiveTokenChunker
from knowledge.loaders import load_document
from knowledge.types import IngestError
from tests.fixtures.documents.make_fixtures import SCAN_PAGES

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "documents"


def _load(name: str, **kwargs):
    return load_document((FIXTURES / name).read_bytes(), name, **kwargs)


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _char_error_rate(recognised: str, truth: str) -> float:
    """Levenshtein distance over the reference length, on lower-cased text with whitespace collapsed."""
    a, b = " ".join(recognised.lower().split()), " ".join(truth.lower().split())
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1] / max(len(b), 1)


@pytest.fixture(scope="module")
def scanned():
    return _load("scanned_with_stamp.pdf")


def test_scanned_pages_under_a_text_stamp_are_ocrd(scanned):
    assert [s.page for s in scanned.sections] == [1, 2]
    assert all(s.metadata["ocr"] is True and s.metadata["ocr_confidence"] > ocr.LOW_CONFIDENCE
               for s in scanned.sections)
    assert "seventeen amber lanterns" in _words(scanned.sections[0].text)
    assert "violet signal flare" in _words(scanned.sections[1].text)
    assert scanned.metadata["ocr"]["pages"] == [1, 2] and scanned.metadata["ocr"]["seconds"] > 0
    assert scanned.warnings == []


def test_ocr_character_error_rate_on_clean_renders(scanned):
    for section, (title, body) in zip(scanned.sections, SCAN_PAGES, strict=True):
        # The page holds the stamp (rendered too, the first line), the title and the body.
        stamp, text = section.text.split("\n", 1)
        assert _words(stamp).startswith("case")
        assert _char_error_rate(text, f"{title} {body}") < 0.05, text


def test_ocr_off_says_the_pages_were_not_read():
    doc = _load("scanned_with_stamp.pdf", ocr="off")
    # Only the stamps remain, and the document says why instead of passing them off as its content.
    assert [_words(s.text) for s in doc.sections] == [
        "case 1 21 cv 04417 document 12 filed 03 02 21 page 1 of 2",
        "case 1 21 cv 04417 document 12 filed 03 02 21 page 2 of 2"]
    assert [(w["code"], w["page"], w["message"]) for w in doc.warnings] == [
        ("ocr_off", 1, "page 1: no text layer; OCR is off"), ("ocr_off", 2, "page 2: no text layer; OCR is off")]
    assert "ocr" not in doc.metadata


def test_low_confidence_pages_are_flagged(monkeypatch):
    monkeypatch.setattr(ocr, "LOW_CONFIDENCE", 1.01)  # every page falls below a bar above perfect
    doc = _load("scanned_with_stamp.pdf")
    assert [(w["code"], w["page"]) for w in doc.warnings] == [("ocr_low_confidence", 1), ("ocr_low_confidence", 2)]
    assert "OCR confidence" in doc.warnings[0]["message"] and 0 < doc.warnings[0]["confidence"] < 1
    assert "seventeen amber lanterns" in _words(doc.text)  # still indexed


def test_png_and_multi_page_tiff():
    png = _load("receipt.png")
    assert png.mime_type == "image/png" and "copper kettle repair" in _words(png.text)
    assert png.sections[0].metadata["ocr"] is True
    tiff = _load("memo.tiff")
    assert tiff.page_count == 2 and [s.page for s in tiff.sections] == [1, 2]
    assert "forty pear saplings" in _words(tiff.sections[0].text)
    assert "shipment of cobalt glazing" in _words(tiff.sections[1].text)
    assert "arrives on thursday" in _words(tiff.sections[1].text)


def test_images_with_ocr_off_or_broken_bytes():
    with pytest.raises(IngestError) as info:
        _load("receipt.png", ocr="off")
    assert info.value.code == "no_text" and "no text layer; OCR is off" in info.value.message
    with pytest.raises(IngestError) as info:
        load_document(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "logo.png")
    assert info.value.code == "corrupt_file"
    with pytest.raises(IngestError) as info:  # not an image at all: read as the text it is
        load_document(b"\x00\x01\x02binary", "photo.jpg")
    assert info.value.code == "corrupt_file"


def test_docx_table_is_markdown_under_its_heading():
    doc = _load("tables.docx")
    refunds = next(s for s in doc.sections if s.heading_path == ("Billing", "Refunds"))
    assert ("| Plan | Refund window | Fee |\n| --- | --- | --- |\n| Basic | 14 days | none |\n"
            "| Pro | 30 days | 5 percent |\n| Enterprise | 60 days | none |") in refunds.text
    assert refunds.text.endswith("Contact billing for exceptions.")


def test_xlsx_sheets_are_sections_with_markdown_tables():
    doc = _load("tables.xlsx")
    assert [(s.heading_path, s.metadata["sheet"]) for s in doc.sections] == [
        (("Prices",), "Prices"), (("Stock",), "Stock")]
    assert doc.sections[0].text == ("Prices\n\n| Product | Unit price | Currency |\n| --- | --- | --- |\n"
                                    "| Walnut desk | 420 | EUR |\n| Oak shelf | 135.5 | EUR |\n| Birch stool | 60 | EUR |")


def test_pptx_slides_with_notes_and_tables():
    doc = _load("deck.pptx")
    assert doc.title == "Quarterly roadmap" and doc.page_count == 2
    first, second = doc.sections
    assert first.heading_path == ("Quarterly roadmap",) and first.metadata == {"slide": 1} and first.page == 1
    assert "Launch the heron sync engine in May" in first.text
    assert "Notes: Speaker note: mention the pelican migration budget." in first.text
    assert second.heading_path == ("Budget",)
    assert "| Team | Budget |\n| --- | --- |\n| Platform | 120k |\n| Search | 80k |" in second.text


def test_pdf_table_laid_out_in_the_text_layer_becomes_markdown():
    (page,) = _load("statement.pdf").sections
    assert page.metadata == {"tables": True}
    assert page.text == (
        "Harbour Supply Co. - Account statement\n\n"
        "Statement for the north pier workshop, period 1 to 31 March.\n\n"
        "| Date | Item | Quantity | Amount |\n| --- | --- | --- | --- |\n"
        "| 2 March | Brass compass, gimballed | 4 | 312.00 |\n"
        "| 9 March | Tide chart, Solent edition | 12 | 96.60 |\n"
        "| 15 March | Signal lamp batteries (returned 5 on 20 March) | 30 | 45.90 |\n"  # the wrapped line joins its row
        "| 28 March | Mooring rope, 40 m | 2 | 138.00 |\n\n"
        "Payment is due within 30 days. Questions: accounts at the harbour office.")


def test_justified_prose_whose_gaps_line_up_is_not_a_table():
    from knowledge.loaders.pdf_tables import find_tables, text_with_tables

    # Gaps that line up over four lines, as justified text sometimes has, but the cells are pieces of
    # sentences, with no column of figures: text, not a table.
    prose = ("The  court  held    that the  rule    applies  to every  case\n"
             "on   review  and    that the  state   courts   may not   bar it\n"
             "when the     record shows the delay   was      not the  fault\n"
             "of   the     party  who   now  asks   for      relief   from it\n")
    assert find_tables(prose) == [] and text_with_tables(prose) is None
    # The same layout with figures in a column is a table.
    figures = prose.replace("courts", "3.5   ").replace("was", "40 ").replace("for", "7  ")
    (table,) = find_tables(figures)
    assert table.markdown.splitlines()[2:] == ["| on review and that the state | 3.5 | may not bar it |",
                                               "| when the record shows the delay | 40 | not the fault |",
                                               "| of the party who now asks | 7 | relief from it |"]


def test_odt_headings_lists_and_tables():
    doc = _load("guide.odt")
    assert doc.title == "Estuary field guide"
    assert [(s.heading_path, s.text) for s in doc.sections] == [
        (("Field guide",), "Field guide\nKept by the estuary rangers.  Updated each spring."),
        (("Field guide", "Birds"), "Birds\nThe avocet feeds at low tide on the mudflats.\n\n"
                                   "| Species | Count |\n| --- | --- |\n| Avocet | 41 |\n| Curlew | 7 |")]


def test_epub_chapters_in_spine_order():
    doc = _load("log.epub")
    assert doc.title == "The lighthouse log"
    # The cover (an image only) is no chapter; headings give the sections their paths.
    assert [(s.metadata["chapter"], s.heading_path, s.text) for s in doc.sections] == [
        (1, ("Winter",), "Winter\n\nThe keeper trimmed the wick at dusk."),
        (2, ("Spring", "Storms"), "Storms\n\nA squall broke the seaward pane of the lantern room.")]


def test_odt_and_epub_that_are_broken_or_bombs_are_refused(monkeypatch):
    import io
    import zipfile

    from knowledge.loaders import opendocument

    for name in ("guide.odt", "log.epub"):
        with pytest.raises(IngestError) as info:  # a zip without the parts the format needs
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as archive:
                archive.writestr("mimetype", "x")
            load_document(buffer.getvalue(), name)
        assert info.value.code == "corrupt_file" and "is missing" in info.value.message
        with pytest.raises(IngestError) as info:  # truncated
            load_document((FIXTURES / name).read_bytes()[:300], name)
        assert info.value.code == "corrupt_file"
    # A member that unpacks past the budget is refused before it is read.
    monkeypatch.setattr(opendocument, "MAX_UNCOMPRESSED", 1000)
    with pytest.raises(IngestError) as info:
        _load("guide.odt")
    assert info.value.code == "too_large"
    with pytest.raises(IngestError) as info:  # entity expansion (billion laughs) is refused by expat
        buffer = io.BytesIO()
        laughs = ('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
                  + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
                  + ']><office:document-content xmlns:office="urn:x">&j;</office:document-content>')
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("content.xml", laughs)
        monkeypatch.setattr(opendocument, "MAX_UNCOMPRESSED", 10**6)
        load_document(buffer.getvalue(), "laughs.odt")
    assert info.value.code == "corrupt_file"


def test_office_files_that_are_not_zips_are_corrupt():
    for name in ("deck.pptx", "sheet.xlsx"):
        with pytest.raises(IngestError) as info:
            load_document(b"PK\x03\x04 not really a zip", name)
        assert info.value.code == "corrupt_file"


def test_a_large_table_is_split_by_rows_with_its_header_repeated():
    from knowledge.loaders.tables import markdown_table
    from knowledge.types import ParsedDocument, Section

    rows = [["Order", "Customer", "Status"]] + [[f"A-{n:04d}", f"customer number {n}", "shipped"] for n in range(120)]
    text = "Orders of the week:\n\n" + markdown_table(rows) + "\n\nAll orders ship from Leipzig."
    chunks = RecursiveTokenChunker(chunk_size=200, chunk_overlap=40).run(
        ParsedDocument(sections=[Section(text=text)]), document_id="d", source_id="s")
    assert len(chunks) > 3
    header = "| Order | Customer | Status |\n| --- | --- | --- |"
    seen = []
    for chunk in chunks:
        assert chunk.token_count <= 200
        lines = chunk.text.split("\n")
        table_lines = [line for line in lines if line.startswith("|")]
        if table_lines:
            assert header in chunk.text and chunk.text.count("| Order |") == 1  # header once, never twice
            # Only whole rows: every table line has its three cells.
            assert all(line.count("|") == 4 for line in table_lines), chunk.text
            seen.extend(line.split(" | ")[0][2:] for line in table_lines[2:])
    assert seen == [f"A-{n:04d}" for n in range(120)]  # every row once, in order, none lost to overlap
    assert chunks[0].text.startswith("Orders of the week:") and chunks[-1].text.endswith("ship from Leipzig.")
