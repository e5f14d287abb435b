"""Import evaluation test cases from JSON, JSONL and CSV files into one normalised shape (BEIR folders:
``evaluations.beir``).

A normalised test case::

    {"input": str,                                  # the question, non-empty, at most 20,000 characters
     "expected_output": str | list[str] | None,     # reference answer(s); None when there is none
     "expected_sources": [{"id": str, "grade": float}, ...],
     "expected_no_answer": bool,                    # the system should decline to answer
     "metadata": dict,
     "filters": dict | None}

Source ids are plain strings here: document ids, external ids (file paths, URLs) or chunk ids; which one
they are is decided when the suite is run (``evaluations.metrics.retrieval.to_doc_run``). A grade is the
graded relevance of trec_eval: 1 by default, higher for more relevant, and **0 for a document judged
non-relevant** (kept, because graded judgments are what nDCG is computed from).

Each case is checked by ``evaluations.case_fields``: forgiving about field names (the aliases other
tools use), strict about unknown fields and wrong types.

Problems are collected, not raised at the first one: ``TestSetError.errors`` lists each with the
1-based file line (JSONL, CSV, BEIR files) or the 0-based index of the case in a JSON array
(``"case"``), the field, and a message, so a user fixes the whole file in one go.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evaluations.case_fields import _KNOWN, TestSetError, _FieldError, _normalize, _type

FORMATS = ("json", "jsonl", "csv")
MAX_CASES = 100_000
MAX_ERRORS = 50

_BOM = "\ufeff"
_EXTENSIONS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
_CONTENT_TYPES = {
    "application/json": "json", "text/json": "json",
    "application/jsonl": "jsonl", "application/x-jsonl": "jsonl", "application/jsonlines": "jsonl",
    "application/x-jsonlines": "jsonl", "application/x-ndjson": "jsonl", "application/ndjson": "jsonl",
    "text/csv": "csv", "application/csv": "csv", "text/comma-separated-values": "csv",
}
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no", ""}
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


class _Errors:
    """Collects problems up to ``MAX_ERRORS``; parsing stops once ``full`` so a garbage file is cheap."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.truncated = False

    @property
    def full(self) -> bool:
        return self.truncated

    def add(self, message: str, *, line: int | None = None, field: str | None = None, **where: Any) -> None:
        if len(self.items) >= MAX_ERRORS:
            self.truncated = True
            return
        self.items.append({"line": line, "field": field, "message": message, **where})

    def raise_if_any(self) -> None:
        if self.items:
            raise TestSetError(self.items, self.truncated)


# --------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------

def parse_test_cases(data: bytes | str, fmt: str) -> list[dict[str, Any]]:
    """Parse a whole test-set file (``fmt``: "json", "jsonl" or "csv") into normalised test cases.

    JSON is a list of cases or ``{"test_cases": [...]}``; JSONL one case per line (blank lines
    skipped); CSV a header row then one case per row (see ``_parse_csv``). Raises ``TestSetError``
    with every problem found, including an empty set and more than ``MAX_CASES`` cases.
    """
    fmt = (fmt or "").lower()
    fmt = "jsonl" if fmt == "ndjson" else fmt
    if fmt not in FORMATS:
        raise TestSetError.single(f"unsupported format '{fmt}'; use one of {', '.join(FORMATS)}")
    text = _decode(data)
    errors = _Errors()
    if not text.strip():
        raise TestSetError.single("the file is empty: a test set needs at least one test case")
    parser = {"json": _parse_json, "jsonl": _parse_jsonl, "csv": _parse_csv}[fmt]
    cases = parser(text, errors)
    errors.raise_if_any()
    if not cases:
        raise TestSetError.single("the test set has no test cases")
    return cases


def _decode(data: bytes | str) -> str:
    """UTF-8 (a BOM is dropped). No Latin-1 fallback: guessing would import mojibake without a word."""
    if isinstance(data, str):
        return data.removeprefix(_BOM)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise TestSetError.single("the file is UTF-16; save it as UTF-8")
    try:
        return data.decode("utf-8").removeprefix(_BOM)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise TestSetError.single(
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); save the file as UTF-8",
            line=line) from None


class _JsonProblem(ValueError):
    """Raised from json hooks: duplicate keys and NaN/Infinity, which json.loads would accept quietly."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _JsonProblem(f"key '{key}' appears twice in one object (only one value would be kept)")
        obj[key] = value
    return obj


def _constant(name: str) -> Any:
    raise _JsonProblem(f"{name} is not valid JSON")


def _loads(text: str) -> Any:
    return json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant)


def _parse_json(text: str, errors: _Errors) -> list[dict[str, Any]]:
    try:
        doc = _loads(text)
    except json.JSONDecodeError as exc:
        errors.add(f"invalid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno)
        return []
    except _JsonProblem as exc:
        errors.add(str(exc))
        return []
    if isinstance(doc, Mapping):
        if "test_cases" not in doc:
            hint = " (one case per line is JSONL)" if "input" in doc or "question" in doc else ""
            errors.add(f'a JSON test set is a list of cases or {{"test_cases": [...]}}{hint}')
            return []
        for key in doc:
            if key != "test_cases":
                errors.add(f"unknown top-level key '{key}'; only 'test_cases' is read", field=key)
        doc = doc["test_cases"]
    if not isinstance(doc, list):
        errors.add(f"test_cases must be a list, got {_type(doc)}", field="test_cases")
        return []
    if len(doc) > MAX_CASES:
        errors.add(f"{len(doc)} test cases; the limit is {MAX_CASES}")
        return []
    cases = []
    for i, raw in enumerate(doc):
        if errors.full:
            break
        case, problems = _normalize(raw)
        for field, message in problems:
            errors.add(message, field=field, case=i)
        if case is not None:
            cases.append(case)
    return cases


def _parse_jsonl(text: str, errors: _Errors) -> list[dict[str, Any]]:
    # Split on "\n" only: str.splitlines() would also split on U+2028, which JSON allows unescaped.
    cases: list[dict[str, Any]] = []
    count = 0
    for number, line in enumerate(text.split("\n"), start=1):
        if errors.full:
            break
        if not line.strip():
            continue
        count += 1
        if count > MAX_CASES:
            errors.add(f"more than {MAX_CASES} test cases; the limit is {MAX_CASES}", line=number)
            break
        try:
            raw = _loads(line)
        except json.JSONDecodeError as exc:
            errors.add(f"invalid JSON: {exc.msg} (column {exc.colno})", line=number)
            continue
        except _JsonProblem as exc:
            errors.add(str(exc), line=number)
            continue
        case, problems = _normalize(raw)
        for field, message in problems:
            errors.add(message, field=field, line=number)
        if case is not None:
            cases.append(case)
    return cases


def _parse_csv(text: str, errors: _Errors) -> list[dict[str, Any]]:
    """Header row, then one case per row; line numbers are the file line a row starts on.

    Columns: input (or an alias), expected_output, expected_sources (a JSON array, or ids separated by
    "|" each optionally ":grade", e.g. ``a.pdf:2|b.pdf``), expected_no_answer (true/false/1/0/yes/no),
    metadata and filters (JSON objects). Any other column goes into metadata under its header name;
    empty cells are left out. The delimiter is "," unless the header line has none and has ";" or a tab
    (what spreadsheets in some locales write).
    """
    header_line = text.split("\n", 1)[0]
    delimiter = "," if "," in header_line else ";" if ";" in header_line else "\t" if "\t" in header_line else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except csv.Error as exc:
        errors.add(f"unreadable CSV header: {exc}", line=1)
        return []
    columns = _csv_columns(header, errors)
    if columns is None:
        return []
    cases: list[dict[str, Any]] = []
    count, start = 0, reader.line_num + 1
    while not errors.full:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.add(f"unreadable CSV row: {exc}", line=start)
            break  # the reader cannot resynchronise after a broken quote
        line, start = start, reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        count += 1
        if count > MAX_CASES:
            errors.add(f"more than {MAX_CASES} test cases; the limit is {MAX_CASES}", line=line)
            break
        if len(row) > len(header):
            errors.add(f"the row has {len(row)} cells but the header has {len(header)} columns", line=line)
            continue
        raw, problems = _csv_row(columns, row)
        case, more = (None, []) if raw is None else _normalize(raw)
        for field, message in problems + more:
            errors.add(message, field=field, line=line)
        if case is not None:
            cases.append(case)
    return cases


def _csv_columns(header: list[str], errors: _Errors) -> list[tuple[str, str | None]] | None:
    """Per column: (header name, canonical field or None for a metadata column)."""
    columns: list[tuple[str, str | None]] = []
    seen: dict[str, str] = {}
    for i, name in enumerate(header, start=1):
        name = name.strip()
        if not name:
            errors.add(f"column {i} has no name in the header row", line=1)
            continue
        known = name.lower() if name.lower() in _KNOWN else None  # "Question" works like "question"
        target = _KNOWN[known] if known else name
        if target in seen:
            errors.add(f"columns '{seen[target]}' and '{name}' both give {target}; keep one", line=1,
                       field=name)
            continue
        seen[target] = name
        columns.append((name, known))
    if not any(known and _KNOWN[known] == "input" for _, known in columns):
        errors.add("no input column: name one 'input' or 'question'", line=1)
    return None if errors.items else columns


def _csv_row(columns: list[tuple[str, str | None]],
             row: list[str]) -> tuple[dict[str, Any] | None, list[tuple[str | None, str]]]:
    """Turn CSV cells into the JSON shape ``_normalize`` takes (cells are strings; some hold JSON)."""
    raw: dict[str, Any] = {}
    extra: dict[str, str] = {}
    problems: list[tuple[str | None, str]] = []
    for (name, known), cell in zip(columns, row, strict=False):
        field = _KNOWN[known] if known else None
        try:
            if known is None:
                if cell.strip():
                    extra[name] = cell
            elif field == "expected_sources":
                raw[known] = _csv_sources(cell)
            elif field == "expected_no_answer":
                raw[known] = _csv_bool(cell)
            elif field in ("metadata", "filters"):
                raw[known] = _csv_json_object(cell)
            else:
                raw[known] = cell
        except _FieldError as exc:
            problems.append((known, exc.message))
    if extra and not problems:
        metadata = raw.get("metadata") or {}
        clash = sorted(set(metadata) & set(extra))
        if clash:
            problems.append((clash[0], f"'{clash[0]}' is both a column and a key of the metadata cell"))
        raw["metadata"] = {**metadata, **extra}
    return (None, problems) if problems else (raw, [])


def _csv_sources(cell: str) -> Any:
    cell = cell.strip()
    if not cell:
        return None
    if cell.startswith(("[", "{")):
        return _csv_json(cell)
    sources: list[Any] = []
    for part in cell.split("|"):
        part = part.strip()
        if not part:
            continue
        # "a.pdf:2" carries a grade; a URL's "https:" does not parse as a number, so it stays in the id.
        # An id that itself ends in ":<number>" (host:port) needs the JSON array form.
        source_id, sep, grade = part.rpartition(":")
        number = _number(grade) if sep and source_id else None
        sources.append({"id": source_id, "grade": number} if number is not None else part)
    return sources


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _csv_bool(cell: str) -> bool:
    word = cell.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise _FieldError(f"must be true/false, 1/0 or yes/no, got '{cell.strip()}'")


def _csv_json_object(cell: str) -> dict[str, Any] | None:
    if not cell.strip():
        return None
    value = _csv_json(cell)
    if not isinstance(value, Mapping):
        raise _FieldError(f"must be a JSON object, got {_type(value)}")
    return value


def _csv_json(cell: str) -> Any:
    try:
        return _loads(cell)
    except json.JSONDecodeError as exc:
        raise _FieldError(f"invalid JSON in the cell: {exc.msg} (column {exc.colno})") from None
    except _JsonProblem as exc:
        raise _FieldError(str(exc)) from None


def detect_format(filename: str | None, content_type: str | None, data: bytes) -> str:
    """"json", "jsonl" or "csv": from the file extension, else the content type, else the content.

    Sniffing: "[" starts a JSON array. "{" starts JSONL when its first line is a whole JSON object
    (unless that is the only line and it holds "test_cases"); a "{" line that is not a whole object is
    pretty-printed JSON. Anything else is read as CSV, whose parser then says what is wrong.
    """
    suffix = Path(filename).suffix.lower() if filename else ""
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in _CONTENT_TYPES:
        return _CONTENT_TYPES[media]
    head = data.removeprefix(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b"["):
        return "json"
    if not head.startswith(b"{"):
        return "csv"
    first, _, rest = head.partition(b"\n")
    try:
        obj = json.loads(first.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "json"
    if isinstance(obj, dict) and "test_cases" in obj and not rest.strip():
        return "json"
    return "jsonl"
