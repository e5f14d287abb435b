"""PowerPoint (.pptx, python-pptx) and Excel (.xlsx, openpyxl): one section per slide, one per sheet."""
from __future__ import annotations

import io
import zipfile

from knowledge.loaders.tables import markdown_table
from knowledge.types import IngestError, ParsedDocument, Section

PPTX_MIME = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# A sheet can hold a million rows of which a search needs the text, not the grid: past this many rows a
# sheet is cut, and the document says so in a warning.
MAX_SHEET_ROWS = 20_000


def _corrupt(name: str, kind: str, exc: Exception) -> IngestError:
    return IngestError("corrupt_file", f"{name} is not a readable {kind} file: {exc}", name=name)


def _shape_texts(shapes, title_shape) -> tuple[list[str], list[str]]:
    """Text frames and tables of ``shapes`` (groups included, in reading order), title excluded."""
    texts: list[str] = []
    tables: list[str] = []
    for shape in shapes:
        if shape == title_shape:
            continue
        if getattr(shape, "shape_type", None) == 6:  # MSO_SHAPE_TYPE.GROUP
            inner_texts, inner_tables = _shape_texts(shape.shapes, None)
            texts.extend(inner_texts)
            tables.extend(inner_tables)
        elif getattr(shape, "has_table", False) and shape.has_table:
            rows = [[cell.text for cell in row.cells] for row in shape.table.rows]
            if table := markdown_table(rows):
                tables.append(table)
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            text = "\n".join(p.text.strip() for p in shape.text_frame.paragraphs if p.text.strip())
            if text:
                texts.append(text)
    return texts, tables


class PptxLoader:
    """PowerPoint decks: each slide a section (its title as heading) with body text, tables and notes."""

    extensions = (".pptx",)

    def run(self, data: bytes, name: str) -> ParsedDocument:
        """One Section per slide with text, ``metadata={"slide": n}``, heading path the slide's title."""
        from pptx import Presentation

        try:
            deck = Presentation(io.BytesIO(data))
            slides = list(deck.slides)
        except Exception as exc:  # not a zip, missing parts, broken XML
            raise _corrupt(name, "PowerPoint (.pptx)", exc) from exc
        sections: list[Section] = []
        for number, slide in enumerate(slides, start=1):
            title_shape = slide.shapes.title
            title = " ".join(title_shape.text.split()) if title_shape is not None and title_shape.has_text_frame else ""
            texts, tables = _shape_texts(slide.shapes, title_shape)
            notes = ""
            if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
                notes = slide.notes_slide.notes_text_frame.text.strip()
            parts = ([title] if title else []) + texts + tables + ([f"Notes: {notes}"] if notes else [])
            if not (texts or tables or notes or title):
                continue
            heading = title or f"Slide {number}"
            sections.append(Section(text="\n\n".join(parts), page=number, heading_path=(heading,),
                                    metadata={"slide": number}))
        if not sections:
            raise IngestError("empty", f"{name} contains no text", name=name)
        core_title = (deck.core_properties.title or "").strip()
        return ParsedDocument(sections=sections, title=core_title or sections[0].heading_path[0],
                              mime_type=PPTX_MIME, page_count=len(slides))


class XlsxLoader:
    """Excel workbooks: each sheet a section headed by its name, its used cells as a Markdown table.

    Cached values are read (``data_only``), so a formula cell gives what Excel last computed.
    """

    extensions = (".xlsx", ".xlsm")

    def run(self, data: bytes, name: str) -> ParsedDocument:
        """One Section per non-empty sheet, ``metadata={"sheet": title}``; the first row is the header."""
        import openpyxl

        try:
            book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
            sheets = list(book.worksheets)
        except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError) as exc:
            raise _corrupt(name, "Excel (.xlsx)", exc) from exc
        sections: list[Section] = []
        warnings: list[dict] = []
        try:
            for sheet in sheets:
                rows = []
                for n, row in enumerate(sheet.iter_rows(values_only=True)):
                    if n >= MAX_SHEET_ROWS:
                        warnings.append({"code": "sheet_truncated", "page": None, "sheet": sheet.title,
                                         "message": f"sheet {sheet.title}: only the first {MAX_SHEET_ROWS} "
                                                    "rows were read"})
                        break
                    rows.append(["" if v is None else v for v in row])
                table = markdown_table(rows)
                if table:
                    sections.append(Section(text=f"{sheet.title}\n\n{table}", heading_path=(sheet.title,),
                                            metadata={"sheet": sheet.title}))
        except Exception as exc:  # a damaged sheet part shows only when it is read
            raise _corrupt(name, "Excel (.xlsx)", exc) from exc
        finally:
            book.close()
        if not sections:
            raise IngestError("empty", f"{name} contains no values", name=name)
        return ParsedDocument(sections=sections, mime_type=XLSX_MIME, page_count=len(sheets), warnings=warnings)
