"""Word (.docx) loader (python-docx): paragraphs and tables (as Markdown) in order, sectioned at headings."""
from __future__ import annotations

import io
import re

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from knowledge.loaders.outline import Outline
from knowledge.loaders.tables import markdown_table
from knowledge.types import IngestError, ParsedDocument

_HEADING_STYLE = re.compile(r"^Heading (\d)$")


def _heading_level(paragraph: Paragraph) -> int | None:
    """1-9 for Word's built-in "Heading N" styles, else None."""
    try:
        style = paragraph.style.name if paragraph.style is not None else ""
    except (KeyError, ValueError):  # a style id that the styles part does not define
        return None
    m = _HEADING_STYLE.match(style or "")
    return int(m.group(1)) if m else None


def _table_markdown(table: Table) -> str:
    """The table as Markdown, its first row the header; a merged cell is listed once, not once per grid column."""
    rows = []
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            cells.append(cell.text)
        rows.append(cells)
    return markdown_table(rows)


class DocxLoader:
    """Word documents (.docx; the old binary .doc is not supported)."""

    extensions = (".docx",)

    def run(self, data: bytes, name: str) -> ParsedDocument:
        """Return heading sections of the document's paragraphs and tables (tables row by row)."""
        try:
            document = docx.Document(io.BytesIO(data))
            blocks = list(document.iter_inner_content())
        except Exception as exc:  # not a zip, no document part, broken XML...
            raise IngestError("corrupt_file", f"{name} is not a readable .docx file: {exc}", name=name) from exc

        outline = Outline()
        for block in blocks:
            if isinstance(block, Table):
                outline.table(_table_markdown(block))
                continue
            text = block.text.strip()
            if not text:
                continue
            level = _heading_level(block)
            if level is None:
                outline.paragraph(text)
            else:
                outline.heading(level, text)
        sections = outline.finish()

        core_title = (document.core_properties.title or "").strip()
        if not sections:
            raise IngestError("empty", f"{name} contains no text", name=name)
        return ParsedDocument(
            sections=sections,
            title=core_title or outline.first_title,
            mime_type="application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        )
