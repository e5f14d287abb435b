"""Checks every API request passes before a view sees it (registered in create_app, in this order):

1. `limit_json_body`: JSON bodies have their own, smaller size limit than uploads (413), and bodies of
   other types are refused (415), except test sets sent as raw CSV / JSON Lines;
2. (authentication, app.auth);
3. `refuse_unstorable_text`: text no database can store (knowledge.storable_text: NUL characters, a 500
   from psycopg otherwise, and lone surrogates) is refused with 400 before anything stores it. No name,
   id or message needs either. Multipart uploads are not read here: NUL bytes in a file's content are
   legal.
4. `refuse_undeclared_input`: what the operation does not declare is refused with 422, the same as an
   unknown body field: a query argument or a multipart part it does not take (a typo like `?limt=5`
   would otherwise be ignored silently), and a missing body where it needs one (`{}` is a body). A
   multipart body sent to an operation that takes JSON is 415.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from flask import current_app, request

from app.auth import view_handler
from app.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from knowledge.storable_text import is_storable, printable, unstorable_path

# Test cases may be posted as the raw body of a CSV or JSON Lines file, not only as multipart.
TEST_CASE_TYPES = ("text/csv", "application/x-ndjson", "application/jsonl", "application/x-jsonlines")
# What a body must contain for its parsed text to hold a NUL or a surrogate: their JSON escapes, or raw
# NUL bytes (invalid JSON in UTF-8, but present in a UTF-16/32 body).
_SUSPECT_BYTES = re.compile(rb"\\u0000|\\u[dD][89a-fA-F]|\x00")
_PLACES = {"path": "the URL path", "query": "the query argument", "json": "the JSON body at"}


def limit_json_body():
    """JSON bodies have their own, smaller limit than uploads: 413 before anything parses them."""
    if request.method not in ("POST", "PUT", "PATCH") or not request.path.startswith("/api"):
        return
    length = request.content_length or 0
    mimetype = request.mimetype or ""
    if request.path.endswith("/test-cases") and mimetype in TEST_CASE_TYPES:
        return  # a test set sent as CSV or JSON Lines: the upload limit applies, as for a file
    if length and not (mimetype == "application/json" or mimetype.endswith("+json")
                       or mimetype.startswith("multipart/")):
        raise UnsupportedMediaType(
            f"Send the body as application/json (got {mimetype or 'no content type'}).",
            details={"content_type": mimetype},
        )
    limit = current_app.extensions["magnet.config"].max_json_bytes
    if not mimetype.startswith("multipart/") and length > limit:
        raise PayloadTooLarge(
            f"The JSON body is {length} bytes; the limit is {limit}.",
            details={"limit_bytes": limit, "size_bytes": length},
        )


def refuse_unstorable_text():
    """400 for a NUL or a lone surrogate anywhere in the path, query or JSON body (see the module doc)."""
    where = _in_url() or _in_json()
    if where:
        location, field = where
        raise BadRequest(f"The request has a NUL character (\\u0000) or a lone surrogate (\\ud800-\\udfff) in "
                         f"{_PLACES[location]} '{field}': text may contain neither.",
                         details={"location": location, "field": field})


def _in_url() -> tuple[str, str] | None:
    if not is_storable(request.path):
        return "path", printable(request.path)
    for name, value in request.args.items(multi=True):
        if not (is_storable(name) and is_storable(value)):
            return "query", printable(name)
    return None


def _in_json() -> tuple[str, str] | None:
    if not request.is_json:
        return None
    raw = request.get_data(cache=True)  # cached: the arguments parser reads the same bytes again
    if not _SUSPECT_BYTES.search(raw):  # the common case costs one scan of the bytes
        return None
    try:
        data = request.get_json(silent=True)  # None when invalid: the parser then answers invalid_json
    except RecursionError:
        return None  # nested too deeply to parse: the arguments parser answers invalid_json
    field = unstorable_path(data)
    return ("json", field) if field is not None else None


def refuse_undeclared_input():
    """422 for a query argument or form part the operation does not declare, or a missing body it requires;
    415 for a multipart body sent to an operation that takes JSON."""
    if request.method == "OPTIONS":
        return
    handler = view_handler(current_app, request.endpoint, request.method)
    if not hasattr(handler, "_apidoc"):
        return  # not an API operation (the OpenAPI document, the docs UI's files) or no such route
    declared = _declared_input(handler)
    _refuse_unknown("query argument", request.args, declared.query)
    if (request.mimetype or "").startswith("multipart/"):
        if not declared.parts:
            raise UnsupportedMediaType("This operation takes an application/json body, not multipart.",
                                       details={"content_type": request.mimetype})
        _refuse_unknown("form part", [*request.files, *request.form], declared.parts)
    elif declared.body_required and not request.content_length and not request.get_data(cache=True):
        raise ValidationFailed("This operation needs a JSON body (an object; {} when no field is needed).",
                               details={"fields": {"_schema": ["A JSON body is required."]}})


def _refuse_unknown(what: str, names, known: frozenset[str]) -> None:
    unknown = sorted(set(names) - known)
    if unknown:
        raise ValidationFailed(
            "The request did not pass validation: " + "; ".join(f"{name}: Unknown {what}." for name in unknown),
            details={"fields": {name: ["Unknown field."] for name in unknown}},
        )


@dataclass(frozen=True)
class _Declared:
    query: frozenset[str]  # query argument names
    parts: frozenset[str]  # multipart form part names (files and fields)
    body_required: bool  # a JSON body is required


@cache
def _declared_input(handler) -> _Declared:
    """What the operation's @blp.arguments declare, by location."""
    names: dict[str, set[str]] = {"query": set(), "parts": set()}
    body_required = False
    for parameter in handler._apidoc.get("arguments", {}).get("parameters", []):
        schema = parameter["schema"]
        schema = schema() if isinstance(schema, type) else schema
        fields = {field.data_key or name for name, field in schema.load_fields.items()}
        if parameter["in"] == "query":
            names["query"] |= fields
        elif parameter["in"] in ("files", "form"):
            names["parts"] |= fields
        elif parameter["in"] == "json" and parameter.get("required", True):
            body_required = True
    return _Declared(frozenset(names["query"]), frozenset(names["parts"]), body_required)
