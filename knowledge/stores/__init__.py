"""Vector stores and lexical indexes, plus the few helpers their implementations share.

Implementations live one per module (``chroma``, ``lexical_sqlite``, ``lexical_postgres``) and are imported
lazily, so using the SQLite index never imports chromadb and vice versa.

Every store keeps the same *flat* metadata per chunk (see :func:`chunk_metadata`) and accepts the same
Chroma-style ``where`` filter (``{"document_id": "doc_1"}``, ``{"page": {"$gte": 3}}``,
``{"$and": [...]}``), so one filter works on the dense and the lexical side of a hybrid query.
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from knowledge.types import Chunk, LexicalIndex

HEADING_SEPARATOR = " > "
_SCALARS = (str, int, float, bool)


def chunk_metadata(chunk: Chunk) -> dict[str, Any]:
    """Flatten a chunk's facts into the scalar-only metadata that stores keep and return in Hits.

    Chroma only accepts str/int/float/bool values, so ``heading_path`` is joined with " > ", ``page`` is
    left out when unknown, and non-scalar values of ``chunk.metadata`` are dropped. The chunk's own
    fields win over a ``chunk.metadata`` key of the same name.
    """
    meta: dict[str, Any] = {k: v for k, v in chunk.metadata.items() if isinstance(v, _SCALARS)}
    meta.update(
        document_id=chunk.document_id,
        source_id=chunk.source_id,
        ordinal=chunk.ordinal,
        token_count=chunk.token_count,
        content_hash=chunk.content_hash,
    )
    if chunk.heading_path:
        meta["heading_path"] = HEADING_SEPARATOR.join(chunk.heading_path)
        meta["section"] = meta["heading_path"]  # the name results and citations show it under
    if chunk.page is not None:
        meta["page"] = chunk.page
    return meta


def dedupe_chunks(chunks, vectors=None):
    """Keep the last occurrence of each chunk id (stores reject or double-count repeated ids in a batch)."""
    last = {c.id: i for i, c in enumerate(chunks)}
    keep = sorted(last.values())
    if len(keep) == len(chunks):
        return list(chunks), vectors
    return [chunks[i] for i in keep], (None if vectors is None else [vectors[i] for i in keep])


def safe_table_name(prefix: str, name: str, max_len: int = 63) -> str:
    """An SQL identifier derived from an index name: ``[a-z0-9_]`` only, at most ``max_len`` characters.

    When sanitising changes the name (or it is too long) a short hash of the original is appended, so
    "a-b" and "a_b" never share a table.
    """
    clean = re.sub(r"[^a-z0-9_]", "_", name.lower())
    table = f"{prefix}_{clean}"
    if clean != name or len(table) > max_len:
        digest = hashlib.sha256(name.encode()).hexdigest()[:10]
        table = f"{table[: max_len - 11]}_{digest}"
    return table


# The tokenisation rules every lexical index shares (re-exported: callers import them from here).
from knowledge.stores.lexical_terms import MAX_QUERY_TERMS, STOPWORDS, query_terms  # noqa: E402, F401

_COMPARE = {"$eq": "=", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def where_to_sql(where: dict | None, dialect: str, params: dict[str, Any]) -> str:
    """Compile a Chroma-style metadata filter into an SQL condition on the JSON column ``meta``.

    Values are bound into ``params`` (never spliced into the SQL). ``dialect`` is "sqlite" (``json_extract``
    on a JSON text column) or "postgresql" (``->`` on a jsonb column, compared as jsonb so mixed types never
    raise). Supported: ``{k: v}``, ``{k: {"$eq"|"$ne"|"$gt"|"$gte"|"$lt"|"$lte"|"$in"|"$nin": ...}}``,
    ``{"$and": [...]}``, ``{"$or": [...]}``. A chunk without the key matches ``$ne`` and ``$nin``.
    """
    if not where:
        return "1=1"

    def bind(v: Any) -> str:
        name = f"w{len(params)}"
        params[name] = v
        return f":{name}"

    def field(key: str) -> str:
        if dialect == "sqlite":
            if '"' in key:
                raise ValueError(f"invalid metadata key {key!r}")
            path = '$."' + key + '"'  # quoted, so keys with dots or spaces stay one key
            return f"json_extract(meta, {bind(path)})"
        return f"(meta -> {bind(key)})"

    def value(v: Any) -> str:
        return bind(v) if dialect == "sqlite" else f"CAST({bind(json_dumps(v))} AS jsonb)"

    clauses = []
    for key, cond in where.items():
        if key in ("$and", "$or"):
            parts = [f"({where_to_sql(sub, dialect, params)})" for sub in cond]
            joiner = " AND " if key == "$and" else " OR "
            clauses.append(f"({joiner.join(parts)})" if parts else ("1=1" if key == "$and" else "1=0"))
            continue
        for op, operand in (cond if isinstance(cond, dict) else {"$eq": cond}).items():
            col = field(key)
            if op in _COMPARE:
                clause = f"{col} {_COMPARE[op]} {value(operand)}"
                clauses.append(f"({col} IS NULL OR {clause})" if op == "$ne" else clause)
            elif op in ("$in", "$nin") and not operand:
                clauses.append("1=0" if op == "$in" else "1=1")
            elif op in ("$in", "$nin"):
                items = ", ".join(value(v) for v in operand)
                clauses.append(f"{col} IN ({items})" if op == "$in" else f"({col} IS NULL OR {col} NOT IN ({items}))")
            else:
                raise ValueError(f"unsupported filter operator {op!r}")
    return " AND ".join(clauses) if clauses else "1=1"


def json_dumps(value: Any) -> str:
    """JSON for metadata columns: compact and stable."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def make_lexical_index(engine, name: str) -> LexicalIndex:
    """The lexical index for ``engine``'s database: FTS5 on SQLite, a BM25 postings table on PostgreSQL;
    both index the terms of ``knowledge.stores.lexical_terms`` and rank them identically."""
    dialect = engine.dialect.name
    if dialect == "sqlite":
        from knowledge.stores.lexical_sqlite import SqliteFtsIndex

        return SqliteFtsIndex(engine, name)
    if dialect == "postgresql":
        from knowledge.stores.lexical_postgres import PostgresFtsIndex

        return PostgresFtsIndex(engine, name)
    raise ValueError(f"no lexical index for database dialect {dialect!r}")
