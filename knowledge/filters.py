"""Metadata filters for retrieval: one Mongo-style syntax for the dense and the lexical side.

A filter is a dict over the flat chunk metadata of :func:`knowledge.stores.chunk_metadata`
(``document_id``, ``source_id``, ``ordinal``, ``page``, ``heading_path``, plus scalar keys of the
document's own metadata)::

    {"document_id": "doc_1"}                                  # shorthand for {"$eq": "doc_1"}
    {"page": {"$gte": 3, "$lt": 10}}                          # several operators on one key: AND
    {"team": "ops", "priority": {"$in": [1, 2]}}              # several keys: AND
    {"$or": [{"team": "ops"}, {"$and": [{"page": 1}, {"lang": {"$ne": "de"}}]}]}

Operators: ``$eq $ne $gt $gte $lt $lte $in $nin`` on a key, ``$and $or`` over a list of filters.

Semantics (the same in every store; checked by tests against Chroma, SQLite FTS5 and :func:`matches`):

* ``$eq``/``$in`` need the key to be present; ``$ne``/``$nin`` also match chunks *without* the key.
* ``$gt $gte $lt $lte`` take a number (not a bool) and only match numeric values.
* ``$in: []`` matches nothing, ``$nin: []`` everything; ``$and: []`` matches everything, ``$or: []`` nothing.
* Numbers compare by value (``1 == 1.0``). Keep each key to one type across chunks: Chroma never
  matches a bool with a number, SQL stores compare a bool as 0/1, and SQL stores order strings
  against numbers where Chroma does not.

:func:`validate_filter` raises :class:`FilterError` (a ``ValueError``) naming the offending operator
and where it sits, e.g. ``unsupported filter operator '$regex' at title.$regex``; the web layer turns
that into a 422. Chroma itself is stricter than this syntax (one key per dict, two or more clauses
per ``$and``/``$or``, non-empty single-type ``$in`` lists): :func:`to_chroma_where` rewrites a valid
filter into that form.
"""
from __future__ import annotations

import math
from typing import Any

COMPARISONS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")
LIST_OPERATORS = ("$in", "$nin")
FIELD_OPERATORS = COMPARISONS + LIST_OPERATORS
LOGICAL_OPERATORS = ("$and", "$or")
_RANGE = ("$gt", "$gte", "$lt", "$lte")
_SCALARS = (str, int, float, bool)
MAX_DEPTH = 16
MAX_CLAUSES = 1000


class FilterError(ValueError):
    """An invalid metadata filter. ``path`` locates the problem (``$or[1].page.$gte``), ``operator``
    is the offending operator when there is one."""

    def __init__(self, message: str, path: str = "", operator: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.operator = operator


class _MatchNothing:
    """The value of :func:`to_chroma_where` for a filter no chunk can match (e.g. ``$in: []``)."""

    def __repr__(self) -> str:
        return "MATCH_NOTHING"


MATCH_NOTHING: Any = _MatchNothing()


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _check_scalar(value: Any, path: str, op: str) -> None:
    if not isinstance(value, _SCALARS):
        raise FilterError(f"operand of {op} at {path} must be a string, number or bool, got {type(value).__name__}",
                          path, op)
    if isinstance(value, float) and not math.isfinite(value):
        raise FilterError(f"operand of {op} at {path} must be a finite number", path, op)


def validate_filter(filter: Any) -> None:
    """Raise :class:`FilterError` unless ``filter`` is ``None`` or a valid filter (see the module docs)."""
    if filter is None:
        return
    counter = [0]
    _validate(filter, "", 0, counter)


def _validate(node: Any, path: str, depth: int, counter: list[int]) -> None:
    if depth > MAX_DEPTH:
        raise FilterError(f"filter is nested more than {MAX_DEPTH} levels deep at {path}", path)
    if not isinstance(node, dict):
        raise FilterError(f"a filter must be an object, got {type(node).__name__} at {path or 'the top level'}", path)
    for key, value in node.items():
        counter[0] += 1
        if counter[0] > MAX_CLAUSES:
            raise FilterError(f"filter has more than {MAX_CLAUSES} clauses", path)
        if not isinstance(key, str) or not key:
            raise FilterError(f"filter keys must be non-empty strings, got {key!r} at {path or 'the top level'}", path)
        here = _join(path, key)
        if key.startswith("$"):
            if key not in LOGICAL_OPERATORS:
                where = f" at {path}" if path else ""
                hint = (f"{key} applies to a metadata key, e.g. {{'page': {{'{key}': ...}}}}"
                        if key in FIELD_OPERATORS else f"supported: {', '.join(LOGICAL_OPERATORS + FIELD_OPERATORS)}")
                raise FilterError(f"unsupported filter operator {key!r}{where}; {hint}", here, key)
            if not isinstance(value, list):
                raise FilterError(f"{key} at {here} takes a list of filters, got {type(value).__name__}", here, key)
            for i, sub in enumerate(value):
                _validate(sub, f"{here}[{i}]", depth + 1, counter)
            continue
        if '"' in key:
            raise FilterError(f"metadata key {key!r} may not contain a double quote", here)
        if not isinstance(value, dict):
            _check_scalar(value, here, "$eq")
            continue
        if not value:
            raise FilterError(f"no operator given for metadata key {key!r} at {here}", here)
        for op, operand in value.items():
            op_path = _join(here, str(op))
            if op not in FIELD_OPERATORS:
                hint = (f"{op} combines filters and goes at the top level or inside another $and/$or"
                        if op in LOGICAL_OPERATORS else f"supported: {', '.join(FIELD_OPERATORS)}")
                raise FilterError(f"unsupported filter operator {op!r} at {op_path}; {hint}", op_path, str(op))
            if op in LIST_OPERATORS:
                if not isinstance(operand, list | tuple):
                    raise FilterError(f"{op} at {op_path} takes a list, got {type(operand).__name__}", op_path, op)
                for item in operand:
                    _check_scalar(item, op_path, op)
            elif op in _RANGE:
                if not _is_number(operand) or not math.isfinite(operand):
                    raise FilterError(f"{op} at {op_path} takes a finite number, got {operand!r}", op_path, op)
            else:
                _check_scalar(operand, op_path, op)


# --- canonical form -------------------------------------------------------------------------------
# A tree of ("and", [...]), ("or", [...]), ("cmp", key, op, operand), True, False.


def _canonical(node: dict) -> Any:
    parts: list[Any] = []
    for key, value in node.items():
        if key in LOGICAL_OPERATORS:
            subs = [_canonical(sub) for sub in value]
            parts.append(("and" if key == "$and" else "or", subs))
        elif isinstance(value, dict):
            parts.extend(("cmp", key, op, list(operand) if op in LIST_OPERATORS else operand)
                         for op, operand in value.items())
        else:
            parts.append(("cmp", key, "$eq", value))
    return _simplify(("and", parts))


def _simplify(node: Any) -> Any:
    if node is True or node is False:
        return node
    if node[0] == "cmp":
        _, key, op, operand = node
        if op in LIST_OPERATORS and not operand:
            return op == "$nin"
        return node
    kind, subs = node
    neutral, absorbing = (True, False) if kind == "and" else (False, True)
    kept = []
    for sub in (_simplify(s) for s in subs):
        if sub is absorbing:
            return absorbing
        if sub is neutral:
            continue
        if sub[0] == kind:  # flatten nested $and in $and, $or in $or
            kept.extend(sub[1])
        else:
            kept.append(sub)
    if not kept:
        return neutral
    return kept[0] if len(kept) == 1 else (kind, kept)


def normalize_filter(filter: dict | None) -> dict | None:
    """Validate ``filter`` and return an equivalent one in which constant parts are folded away.

    ``None`` means "no restriction"; :data:`MATCH_NOTHING` means no chunk can match (the caller can
    skip the query). Otherwise a filter with one key per dict, as every store accepts.
    """
    validate_filter(filter)
    if not filter:
        return None
    tree = _canonical(filter)
    if tree is True:
        return None
    if tree is False:
        return MATCH_NOTHING
    return _to_dict(tree, chroma=False)


def to_chroma_where(filter: dict | None) -> dict | None:
    """Translate a filter into Chroma's ``where`` syntax (validating it first).

    Returns ``None`` for "no restriction" and :data:`MATCH_NOTHING` when nothing can match (Chroma has
    no way to say either: it rejects ``{}``, ``$in: []`` and one-clause ``$and``).
    """
    validate_filter(filter)
    if not filter:
        return None
    tree = _canonical(filter)
    if tree is True:
        return None
    if tree is False:
        return MATCH_NOTHING
    return _to_dict(tree, chroma=True)


def _to_dict(node: Any, chroma: bool) -> dict:
    if node[0] == "cmp":
        _, key, op, operand = node
        if chroma and op in LIST_OPERATORS:
            groups = _type_groups(operand)
            if len(groups) > 1:  # Chroma wants every $in/$nin list of one type
                joiner = "$or" if op == "$in" else "$and"
                return {joiner: [{key: {op: group}} for group in groups]}
        return {key: {op: operand}}
    kind, subs = node
    return {"$and" if kind == "and" else "$or": [_to_dict(sub, chroma) for sub in subs]}


def _type_groups(values: list) -> list[list]:
    groups: dict[type, list] = {}
    for v in values:
        groups.setdefault(type(v), []).append(v)
    return list(groups.values())


# --- evaluation in Python ---------------------------------------------------------------------------


def _equal(value: Any, operand: Any) -> bool:
    if isinstance(value, bool) or isinstance(operand, bool):
        return isinstance(value, bool) and isinstance(operand, bool) and value == operand
    if _is_number(value) and _is_number(operand):
        return value == operand
    return type(value) is type(operand) and value == operand


def _compare(value: Any, op: str, operand: Any) -> bool:
    if op == "$eq":
        return value is not _MISSING and _equal(value, operand)
    if op == "$ne":
        return value is _MISSING or not _equal(value, operand)
    if op == "$in":
        return value is not _MISSING and any(_equal(value, o) for o in operand)
    if op == "$nin":
        return value is _MISSING or not any(_equal(value, o) for o in operand)
    if not _is_number(value):
        return False
    if op == "$gt":
        return value > operand
    if op == "$gte":
        return value >= operand
    if op == "$lt":
        return value < operand
    return value <= operand  # $lte


_MISSING = object()


def compile_filter(filter: dict | None):
    """A predicate ``metadata -> bool`` equivalent to ``filter`` (validated first); None matches all."""
    validate_filter(filter)
    tree = _canonical(filter) if filter else True

    def build(node: Any):
        if node is True or node is False:
            return lambda meta, result=node: result
        if node[0] == "cmp":
            _, key, op, operand = node
            return lambda meta: _compare(meta.get(key, _MISSING), op, operand)
        subs = [build(s) for s in node[1]]
        if node[0] == "and":
            return lambda meta: all(f(meta) for f in subs)
        return lambda meta: any(f(meta) for f in subs)

    return build(tree)


def matches(filter: dict | None, metadata: dict[str, Any]) -> bool:
    """Whether one chunk's flat metadata satisfies ``filter`` (the same semantics as the stores)."""
    return compile_filter(filter)(metadata)
