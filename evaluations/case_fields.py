"""One evaluation test case: its fields, the names other tools give them, and their validation.

Input is forgiving about names and strict about everything else. The field names other tools use are
accepted (``ALIASES``: Ragas' ``question``/``ground_truth``, ``query``, ``answer``, ...), but an unknown
field is an error naming it: a typo such as ``expected_ouptut`` must not silently drop the reference
answers of a whole suite. Free-form data belongs under ``metadata``. Values of the wrong type are
errors too, never coerced (``"expected_no_answer": "false"`` in JSON would otherwise read as true).
The normalised shape is described in ``evaluations.testsets``, which reads whole files of cases.
"""
from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any

from knowledge.storable_text import is_storable, unstorable_path

MAX_INPUT_CHARS = 20_000
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
    if not is_storable(value):
        raise _FieldError(UNSTORABLE)
    return value.strip()


# Text no database can store (knowledge.storable_text): better to say so on the case's line than fail on save.
UNSTORABLE = "contains a NUL character or a lone surrogate, which cannot be stored"


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
    if unstorable_path(value) is not None:
        raise _FieldError(UNSTORABLE)
    return dict(value)


def _parse_filters(name: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _FieldError(f"must be an object, got {_type(value)}")
    if unstorable_path(value) is not None:
        raise _FieldError(UNSTORABLE)
    return dict(value) or None
