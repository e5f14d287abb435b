"""Dify's External Knowledge API over a retrieval tool: records, and Dify's `metadata_condition`.

A condition applies to the metadata a record shows (`source`, `path`, `name`, `title`, `page`, `section`,
and every other key of the hit's metadata). Every operator Dify documents is supported. Conditions on a
document's own fields (source, path, name, title, document_id) are answered from the documents table
and searched with a `document_id` filter, so no matching document is missed however low it ranks; the
others (page, section, custom keys) are checked on the hits of a deeper search (OVERFETCH x top_k).

`name` may be a string or a list; a list is one condition per name, joined like the conditions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select

from app.errors import ValidationFailed
from app.extensions import db
from app.models import Document
from app.services import rag, tools

STRING_OPERATORS = ("contains", "not contains", "start with", "end with")
EQUALITY_OPERATORS = ("is", "is not", "in", "not in")
PRESENCE_OPERATORS = ("empty", "not empty", "null", "not null")
NUMBER_OPERATORS = ("=", "≠", ">", "<", "≥", "≤")
DATE_OPERATORS = ("before", "after")
OPERATORS = STRING_OPERATORS + EQUALITY_OPERATORS + PRESENCE_OPERATORS + NUMBER_OPERATORS + DATE_OPERATORS
# A record's fields that belong to its document, answered from the documents table.
DOCUMENT_FIELDS = ("source", "path", "name", "title", "document_id")
OVERFETCH = 10  # hits searched per record asked for, when conditions are checked on hits
MAX_SEARCHED = 1000
MAX_PUSHED_IDS = 2000  # more matching documents than this are checked on hits instead


@dataclass(frozen=True)
class Condition:
    name: str
    operator: str
    value: Any = None


def parse(metadata_condition: dict | None) -> tuple[list[Condition], str]:
    """The conditions (one per name) and how they join; 422 naming the bad condition otherwise."""
    if not metadata_condition or not metadata_condition.get("conditions"):
        return [], "and"
    logical = metadata_condition.get("logical_operator") or "and"
    if logical not in ("and", "or"):
        _bad("metadata_condition.logical_operator", f"must be 'and' or 'or', not {logical!r}")
    conditions = metadata_condition["conditions"]
    if not isinstance(conditions, list):
        _bad("metadata_condition.conditions", "must be a list of conditions")
    parsed = []
    for index, item in enumerate(conditions):
        where = f"metadata_condition.conditions[{index}]"
        if not isinstance(item, dict):
            _bad(where, "must be an object with name, comparison_operator and value")
        operator = item.get("comparison_operator")
        if operator not in OPERATORS:
            _bad(f"{where}.comparison_operator", f"{operator!r} is not one of: {', '.join(OPERATORS)}")
        names = item.get("name")
        names = [names] if isinstance(names, str) else names
        if not names or not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            _bad(f"{where}.name", "must be a metadata name or a non-empty list of them")
        value = _checked_value(operator, item.get("value"), f"{where}.value")
        parsed.extend(Condition(name, operator, value) for name in names)
    return parsed, logical


def _checked_value(operator: str, value: Any, where: str) -> Any:
    if operator in PRESENCE_OPERATORS:
        return None
    if value is None:
        _bad(where, f"{operator!r} needs a value")
    if operator in ("in", "not in"):
        items = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str | int | float) for v in items):
            _bad(where, f"{operator!r} takes a list of values (or a comma-separated string)")
        return items
    if isinstance(value, dict | list):
        _bad(where, f"{operator!r} takes one value")
    if operator in NUMBER_OPERATORS and _number(value) is None:
        _bad(where, f"{operator!r} compares numbers; {value!r} is not one")
    if operator in DATE_OPERATORS and _instant(value) is None:
        _bad(where, f"{operator!r} compares dates; {value!r} is not an ISO 8601 date or a Unix timestamp")
    return value


def _bad(field: str, problem: str):
    raise ValidationFailed(f"Invalid metadata_condition: {field} {problem}.", code="invalid_filter",
                           details={"fields": {field: [problem]}})


def holds(condition: Condition, metadata: dict[str, Any]) -> bool:
    """Whether a record's metadata satisfies one condition."""
    actual, expected, op = metadata.get(condition.name), condition.value, condition.operator
    if op in PRESENCE_OPERATORS:
        empty = actual is None or (isinstance(actual, str) and not actual.strip())
        return empty if op in ("empty", "null") else not empty
    if op in STRING_OPERATORS:
        text, part = ("" if actual is None else str(actual)).casefold(), str(expected).casefold()
        found = {"contains": part in text, "not contains": part not in text,
                 "start with": actual is not None and text.startswith(part),
                 "end with": actual is not None and text.endswith(part)}
        return found[op]
    if op in ("is", "is not"):
        return _equal(actual, expected) is (op == "is")
    if op in ("in", "not in"):
        return any(_equal(actual, item) for item in expected) is (op == "in")
    if op in NUMBER_OPERATORS:
        number, target = _number(actual), _number(expected)
        if number is None:
            return op == "≠"
        return {"=": number == target, "≠": number != target, ">": number > target, "<": number < target,
                "≥": number >= target, "≤": number <= target}[op]
    moment, target = _instant(actual), _instant(expected)
    if moment is None:
        return False
    return moment < target if op == "before" else moment > target


def _equal(actual: Any, expected: Any) -> bool:
    if actual is None:
        return False
    a, b = _number(actual), _number(expected)
    if a is not None and b is not None and not isinstance(actual, str) and not isinstance(expected, str):
        return a == b
    return str(actual) == str(expected)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _instant(value: Any) -> datetime | None:
    """A date or datetime (ISO 8601; naive means UTC) or a Unix timestamp, as an aware datetime."""
    number = _number(value)
    if number is not None:
        try:
            return datetime.fromtimestamp(number, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text) if len(text) > 10 else datetime.combine(date.fromisoformat(text),
                                                                                    datetime.min.time())
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def record(result: dict) -> dict:
    """A hit as a Dify record; its metadata names the document as users see it (path, name, section)."""
    metadata = dict(result["metadata"])
    metadata.setdefault("path", metadata.get("source"))
    if "heading_path" in metadata:
        metadata.setdefault("section", metadata["heading_path"])
    return {"content": result["content"], "score": result["score"], "title": metadata.get("title") or "",
            "metadata": {k: v for k, v in metadata.items() if v is not None}}


_STREAM_BATCH = 1000


def _document_ids(tool, conditions: list[Condition], logical: str) -> list[str]:
    """The ids of the tool's documents whose own fields satisfy the conditions.

    The conditions are Dify's (contains, start with, ...) on fields SQL stores differently, so they are
    checked here, row by row: the rows are streamed in batches, never all held at once (a source can
    have hundreds of thousands of documents; bench/scale.py)."""
    rows = db.session.execute(select(Document.id, Document.external_id, Document.name, Document.title)
                              .where(Document.source_id.in_(tool.knowledge_source_ids))
                              .execution_options(yield_per=_STREAM_BATCH))
    join = all if logical == "and" else any
    matching = []
    for row in rows:
        fields = {"source": row.external_id, "path": row.external_id, "name": row.name,
                  "title": row.title or row.name, "document_id": row.id}
        if join(holds(c, fields) for c in conditions):
            matching.append(row.id)
    return matching


def retrieve(knowledge_id: str, query: str, *, top_k: int, score_threshold: float | None,
             metadata_condition: dict | None, api_key_id: str | None) -> list[dict]:
    """Dify's records for a query: at most top_k, at least score_threshold, satisfying the conditions."""
    conditions, logical = parse(metadata_condition)
    tool = tools.get_tool("retrieval", knowledge_id)
    own = [c for c in conditions if c.name in DOCUMENT_FIELDS]
    on_hits = [c for c in conditions if c.name not in DOCUMENT_FIELDS]
    filters = None
    if own and (logical == "and" or not on_hits):
        ids = _document_ids(tool, own, logical)
        if len(ids) <= MAX_PUSHED_IDS:
            filters = {"document_id": {"$in": ids}}
            conditions = on_hits if logical == "and" else []
    searched = top_k if not conditions else min(MAX_SEARCHED, top_k * OVERFETCH)
    run = rag.QueryRun(tool=tool, query=query, api_key_id=api_key_id)
    rag.retrieve(run, top_k=searched, filters=filters)
    rag.save_trace(run)
    join = all if logical == "and" else any
    records = []
    for result in run.results:
        shown = record(result)
        if score_threshold is not None and shown["score"] < score_threshold:
            continue
        if conditions and not join(holds(c, shown["metadata"]) for c in conditions):
            continue
        records.append(shown)
    return records[:top_k]
