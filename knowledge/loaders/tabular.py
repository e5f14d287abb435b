"""Record-shaped data: CSV/TSV as a Markdown table, JSON/JSONL records one section per record.

A JSON record becomes ``key: value`` lines so that each chunk is self-describing: a retrieved record still
says which field each value belongs to (a CSV chunk does it with its repeated header row).
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from knowledge.loaders.tables import markdown_table
from knowledge.loaders.text import decode_text
from knowledge.types import IngestError, ParsedDocument, Section

_SNIFF_BYTES = 64 * 1024


def _dialect(text: str, name: str) -> type[csv.Dialect] | csv.Dialect:
    if name.lower().endswith(".tsv"):
        return csv.excel_tab
    try:
        return csv.Sniffer().sniff(text[:_SNIFF_BYTES], delimiters=",;\t|")
    except csv.Error:  # a single column, or too irregular to tell: plain comma CSV
        return csv.excel


class CsvLoader:
    """CSV and TSV: the first row is the header; the rows become one Markdown table (knowledge.loaders.tables).

    The chunker cuts a large table between rows and repeats the header in every chunk, so a retrieved
    chunk still says which column each value belongs to.
    """

    extensions = (".csv", ".tsv")

    def run(self, data: bytes, name: str) -> ParsedDocument:
        """Return one section holding the table (``metadata={"rows": n}``); blank rows are left out."""
        text = decode_text(data, name)
        try:
            rows = list(csv.reader(io.StringIO(text), _dialect(text, name)))
        except csv.Error as exc:
            raise IngestError("corrupt_file", f"{name} is not valid CSV: {exc}", name=name) from exc
        rows = [r for r in rows if any(cell.strip() for cell in r)]
        if len(rows) < 2:
            raise IngestError("empty", f"{name} has no data rows below its header", name=name)
        width = max(len(r) for r in rows)
        # Rows longer than the header still keep their extra values, under generated names.
        header = [h.strip() or f"column_{i + 1}" for i, h in enumerate(rows[0])]
        header += [f"column_{i + 1}" for i in range(len(header), width)]
        table = markdown_table([header] + [[cell.strip() for cell in row] for row in rows[1:]])
        return ParsedDocument(sections=[Section(text=table, metadata={"rows": len(rows) - 1})],
                              mime_type="text/csv", metadata={"columns": header})


def _scalar(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def flatten(value: Any, prefix: str = "") -> Iterator[str]:
    """``key: value`` lines for a JSON value; nested keys are dotted, list items indexed (``a.b[0]``)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from flatten(item, f"{prefix}[{i}]")
    elif value is not None and value != "":
        yield f"{prefix}: {_scalar(value)}" if prefix else _scalar(value)


def _parse_lines(text: str, name: str) -> list[Any]:
    records = []
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise IngestError("corrupt_file", f"{name} line {number} is not valid JSON: {exc.msg}",
                                  name=name, line=number) from exc
    return records


class JsonLoader:
    """JSON (a list of records, or one object) and JSON Lines (one record per line)."""

    extensions = (".json", ".jsonl", ".ndjson")

    def run(self, data: bytes, name: str) -> ParsedDocument:
        """Return one flattened section per record (``{"row": n}``, 1-based), or one for a single object."""
        text = decode_text(data, name)
        many = name.lower().endswith((".jsonl", ".ndjson"))
        if many:
            records = _parse_lines(text, name)
        else:
            try:
                parsed = json.loads(text)
                many = isinstance(parsed, list)
                records = parsed if many else [parsed]
            except json.JSONDecodeError as exc:
                if exc.msg != "Extra data":
                    raise IngestError("corrupt_file", f"{name} is not valid JSON: {exc.msg} at line {exc.lineno}",
                                      name=name, line=exc.lineno, column=exc.colno) from exc
                # One value followed by more: JSON Lines saved as .json, which is common.
                many, records = True, _parse_lines(text, name)
        sections = []
        for n, record in enumerate(records, start=1):
            body = "\n".join(flatten(record))
            if body.strip():
                sections.append(Section(text=body, metadata={"row": n} if many else {}))
        if not sections:
            raise IngestError("empty", f"{name} contains no values", name=name)
        return ParsedDocument(sections=sections, mime_type="application/json")
