"""Tables as Markdown: what every loader that finds a table (DOCX, XLSX, PPTX, HTML, CSV) turns it into.

A Markdown table keeps which value sits under which header in plain text that embeds and indexes well,
and the chunker (knowledge.chunkers.tables) recognises it again: it never cuts one mid-row and repeats the
header in every piece of a large one.
"""
from __future__ import annotations

from collections.abc import Sequence


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return " ".join(text.split()).replace("|", "\\|")


def markdown_table(rows: Sequence[Sequence[object]]) -> str:
    """The rows as a Markdown table, the first row as header; empty rows dropped, short rows padded.

    Returns "" when there is nothing but empty cells. A table of one row is a header-only table.
    """
    cleaned = [[_cell(v) for v in row] for row in rows]
    cleaned = [row for row in cleaned if any(row)]
    if not cleaned:
        return ""
    width = max(len(row) for row in cleaned)
    # Columns that are empty everywhere (spreadsheet padding, merged-cell leftovers) are dropped.
    keep = [c for c in range(width) if any(c < len(row) and row[c] for row in cleaned)]
    cleaned = [[row[c] if c < len(row) else "" for c in keep] for row in cleaned]
    header, body = cleaned[0], cleaned[1:]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines.extend("| " + " | ".join(row) + " |" for row in body)
    return "\n".join(lines)
