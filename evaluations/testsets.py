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

Input is forgiving about names and strict about everything else. The field names other tools use are
accepted (``ALIASES``: Ragas' ``question``/``ground_truth``, ``query``, ``answer``, ...), but an unknown
field is an error naming it: a typo such as ``expected_ouptut`` must not silently drop the reference
answers of a whole suite. Free-form data belongs under ``metadata``. Values of the wrong type are
errors too, never coerced (``"expected_no_answer": "false"`` in JSON would otherwise read as true).

Problems are collected, not raised at the first one: ``TestSetError.errors`` lists each with the
1-based file line (JSONL, CSV, BEIR files) or the 0-based index of the case in a JSON array
(``"case"``), the field, and a message, so a user fixes the whole file in one go.
"""
from __future__ import annotations

import csv
import difflib
import io
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

FORMATS = ("json", "jsonl", "csv")
MAX_CASES = 100_000
MAX_INPUT_CHARS = 20_000
MAX_ERRORS = 50

FIELDS = ("input", "expected_output", "expected_sources", "expected_no_answer", "metadata", "filters")
ALIASES: dict[str, str] = {
    "question": "input",
    "query": "input",
    "answer": "expected_output",
    "expected_answer": "expected_output",
    "ground_truth": "expected_output",
    "reference": "expected_output",
    "sources": "expected_sources",
    "expected_documents": "expected_sources",
    "relevant_docs": "expected_sources",
    "contexts_ids": "expected_sources",
}
_KNOWN = {**{f: f for f in FIELDS}, **ALIASES}

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


class TestSetError(ValueError):
    """A test set that cannot be imported, with every problem found (up to ``MAX_ERRORS``).

    ``errors`` items are ``{"line": int | None, "field": str | None, "message": str}``, plus
    ``"case"`` (0-based index) for cases of a JSON array, and ``"file"`` for BEIR folders.
    ``truncated`` says more problems existed than are listed.
    """

    __test__ = False  # its name starts with "Test": keep pytest from collecting it

    def __init__(self, errors: list[dict[str, Any]], truncated: bool = False):
        self.errors = errors
        self.truncated = truncated
        shown = "; ".join(_describe(e) for e in errors[:3])
        more = len(errors) - 3 + (1 if truncated else 0)
        super().__init__(shown + (f" (and {more}{'+' if truncated else ''} more)" if more > 0 else ""))

    @classmethod
    def single(cls, message: str, *, line: int | None = None, field: str | None = None,
               **where: Any) -> TestSetError:
        """An error about one problem (file level, or a single case)."""
        return cls([{"line": line, "field": field, "message": message, **where}])


def _describe(error: Mapping[str, Any]) -> str:
    place = [f"{error['file']}" if error.get("file") else "",
             f"line {error['line']}" if error.get("line") is not None else "",
             f"case {error['case']}" if error.get("case") is not None else "",
             f"{error['field']}" if error.get("field") else ""]
    where = ", ".join(p for p in place if p)
    return f"{where}: {error['message']}" if where else error["message"]


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
# One case
# --------------------------------------------------------------------------------------------------

def normalize_test_case(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Validate one case given as a mapping (aliases allowed) and return its normalised form.

    Raises ``TestSetError`` listing every bad field (``line`` is ``None``).
    """
    case, problems = _normalize(raw)
    if problems:
        raise TestSetError([{"line": None, "field": f, "message": m} for f, m in problems])
    assert case is not None
    return case


def _normalize(raw: Any) -> tuple[dict[str, Any] | None, list[tuple[str | None, str]]]:
    """(case, []) or (None, [(field, message), ...]); fields are named as the user wrote them."""
    if not isinstance(raw, Mapping):
        return None, [(None, f"a test case must be an object, got {_type(raw)}")]
    problems: list[tuple[str | None, str]] = []
    given: dict[str, tuple[str, Any]] = {}  # canonical field -> (name used, value)
    for key, value in raw.items():
        canonical = _KNOWN.get(key) if isinstance(key, str) else None
        if canonical is None:
            problems.append((str(key), _unknown_key_message(str(key))))
        elif canonical in given:
            problems.append((key, f"'{given[canonical][0]}' and '{key}' both give {canonical}; keep one"))
        else:
            given[canonical] = (key, value)

    def field(name: str, parse, default):
        if name not in given:
            return default
        used, value = given[name]
        try:
            return parse(used, value)
        except _FieldError as exc:
            problems.extend((field or used, message) for field, message in exc.problems)
            return default

    case = {
        "input": field("input", _parse_input, None),
        "expected_output": field("expected_output", _parse_expected_output, None),
        "expected_sources": field("expected_sources", _parse_sources, []),
        "expected_no_answer": field("expected_no_answer", _parse_bool, False),
        "metadata": field("metadata", _parse_metadata, {}),
        "filters": field("filters", _parse_filters, None),
    }
    if "input" not in given:
        problems.append(("input", "missing: every test case needs an input (the question)"))
    return (None, problems) if problems else (case, [])


class _FieldError(Exception):
    """A bad value; ``problems`` holds more than one when a list has several bad items."""

    def __init__(self, message: str, field: str | None = None,
                 problems: list[tuple[str | None, str]] | None = None):
        super().__init__(message)
        self.message, self.field = message, field
        self.problems = problems or [(field, message)]


def _type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
             int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)


def _unknown_key_message(key: str) -> str:
    close = difflib.get_close_matches(key, list(_KNOWN), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown field '{key}'{hint}; put extra data under 'metadata'"


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _FieldError(f"must be a string, got {_type(value)}")
    if "\x00" in value:
        # PostgreSQL text and JSONB columns reject NUL; better to say so here than fail on save.
        raise _FieldError("contains a NUL character")
    return value.strip()


def _parse_input(name: str, value: Any) -> str:
    text = _text(name, value)
    if not text:
        raise _FieldError("must not be empty")
    if len(text) > MAX_INPUT_CHARS:
        raise _FieldError(f"is {len(text)} characters long; the limit is {MAX_INPUT_CHARS}")
    return text


def _parse_expected_output(name: str, value: Any) -> str | list[str] | None:
    """A string or a list of acceptable answers; blank means "no reference" (CSV cells are never null)."""
    if value is None:
        return None
    if isinstance(value, list):
        answers = []
        for i, item in enumerate(value):
            try:
                text = _text(name, item)
            except _FieldError as exc:
                raise _FieldError(exc.message, f"{name}[{i}]") from None
            if text:
                answers.append(text)
        return answers or None
    if not isinstance(value, str):
        raise _FieldError(f"must be a string or a list of strings, got {_type(value)}")
    return _text(name, value) or None


def _parse_grade(value: Any) -> float:
    # bool is an int subclass: "grade": true is a type error, not a grade of 1.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _FieldError(f"grade must be a number, got {_type(value)}")
    if not math.isfinite(value) or value < 0:
        raise _FieldError(f"grade must be a finite number >= 0 (0 = judged non-relevant), got {value}")
    return float(value)


def _source_id(value: Any) -> str:
    # JSON writers often emit numeric ids (BEIR's are digits); any other type is a mistake.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise _FieldError(f"a source id must be a string, got {_type(value)}")
    if not value.strip():
        raise _FieldError("a source id must not be empty")
    return value.strip()


def _parse_sources(name: str, value: Any) -> list[dict[str, Any]]:
    """Items as ids, ``{"id", "grade"}`` objects or ``{id: grade}`` mappings, in order, without repeats."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        # One {"id", "grade"} object, or the {id: grade} mapping form.
        items = [(name, value)] if "id" in value else [(f"{name}.{k}", {k: v}) for k, v in value.items()]
    elif isinstance(value, list):
        items = [(f"{name}[{i}]", item) for i, item in enumerate(value)]
    else:
        raise _FieldError(f"must be a list of source ids, got {_type(value)}")
    sources: dict[str, float] = {}
    problems: list[tuple[str | None, str]] = []
    for where, item in items:
        try:
            for source_id, grade in _source_item(item):
                if source_id in sources:
                    raise _FieldError(f"'{source_id}' is listed twice")
                sources[source_id] = grade
        except _FieldError as exc:
            problems.append((where, exc.message))
    if problems:
        raise _FieldError(problems[0][1], problems[0][0], problems)
    return [{"id": source_id, "grade": grade} for source_id, grade in sources.items()]


def _source_item(item: Any) -> list[tuple[str, float]]:
    if isinstance(item, Mapping):
        if "id" in item:
            extra = sorted(set(item) - {"id", "grade"})
            if extra:
                raise _FieldError(f"unknown key '{extra[0]}' in a source (use 'id' and 'grade')")
            return [(_source_id(item["id"]), _parse_grade(item.get("grade", 1)))]
        if not item:
            raise _FieldError("an empty object is not a source")
        return [(_source_id(k), _parse_grade(g)) for k, g in item.items()]
    return [(_source_id(item), 1.0)]


def _parse_bool(name: str, value: Any) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _FieldError(f"must be true or false, got {_type(value)}")
    return value


def _parse_metadata(name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _FieldError(f"must be an object, got {_type(value)}")
    return dict(value)


def _parse_filters(name: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _FieldError(f"must be an object, got {_type(value)}")
    return dict(value) or None


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
