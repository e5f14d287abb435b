"""Pieces every resource uses: the success envelope, list arguments and field types (services page
through lists with app.common.pagination)."""
from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from app.common.pagination import MAX_CURSOR_LENGTH, MAX_LIMIT, MAX_PAGE


class UtcDateTime(fields.DateTime):
    """ISO 8601 UTC with a trailing Z, e.g. 2026-11-23T13:16:35.123456Z."""

    def _serialize(self, value: datetime | None, attr, obj, **kwargs):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class StrictSchema(Schema):
    """Request bodies: unknown fields are an error (marshmallow's default RAISE), named in the reply."""


class StrictBoolean(fields.Boolean):
    """A JSON `true` or `false`, nothing else: marshmallow's Boolean would take `0`, `"yes"` or `"off"`."""

    default_error_messages = {"invalid": "Not a boolean: send true or false."}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class PartialSchema(Schema):
    """Update bodies: every field optional, and fields not sent keep their value (no load_default)."""

    def __init__(self, *args, **kwargs):
        kwargs["partial"] = True
        super().__init__(*args, **kwargs)


class PaginationSchema(Schema):
    page = fields.Integer(required=True)
    limit = fields.Integer(required=True)
    total = fields.Integer(required=True)
    next_cursor = fields.String(allow_none=True, metadata={
        "description": "Pass as `cursor` for the next page (keyset paging: constant time at any depth, never "
                       "skips or repeats rows when others are inserted); null on the last page, and on lists "
                       "sorted by a column that can be empty"})


class MessageSchema(Schema):
    success = fields.Boolean(required=True)
    message = fields.String(required=True)


@cache
def envelope(schema: type[Schema]) -> type[Schema]:
    """`{"success": true, "data": <schema>}`: one class per schema, so the OpenAPI names stay unique."""
    name = schema.__name__.removesuffix("Schema") + "Envelope"
    return Schema.from_dict(
        {"success": fields.Boolean(required=True), "data": fields.Nested(schema, required=True)}, name=name
    )


@cache
def list_envelope(schema: type[Schema]) -> type[Schema]:
    """`{"success": true, "data": [<schema>], "pagination": {...}}`."""
    name = schema.__name__.removesuffix("Schema") + "ListEnvelope"
    return Schema.from_dict(
        {
            "success": fields.Boolean(required=True),
            "data": fields.List(fields.Nested(schema), required=True),
            "pagination": fields.Nested(PaginationSchema, required=True),
        },
        name=name,
    )


def page_field() -> fields.Integer:
    """`page`, 1 to MAX_PAGE: a page past that would overflow the database's 64-bit OFFSET (a 500)."""
    return fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE))


def limit_field() -> fields.Integer:
    return fields.Integer(load_default=20, validate=validate.Range(min=1, max=MAX_LIMIT))


def list_args(*sort_fields: str, extra: dict[str, fields.Field] | None = None, name: str) -> type[Schema]:
    """Query arguments of a list route: page, limit, sort (whitelisted), order, plus filters."""
    sortable = ("created_at", *sort_fields)
    spec: dict[str, fields.Field] = {
        "page": page_field(),
        "limit": limit_field(),
        "sort": fields.String(
            load_default="created_at",
            validate=validate.OneOf(sortable, error="sort must be one of: {choices}"),
        ),
        "order": fields.String(load_default="desc", validate=validate.OneOf(("asc", "desc"))),
        "cursor": fields.String(validate=validate.Length(min=1, max=MAX_CURSOR_LENGTH), metadata={
            "description": "`pagination.next_cursor` of the previous page (same sort and order): the rows after "
                           "it, in constant time at any depth; wins over `page`"}),
    }
    spec.update(extra or {})
    return Schema.from_dict(spec, name=name)


def event_stream(blp, description: str):
    """Document the `text/event-stream` answer of an operation that streams on request (`stream: true`)."""
    return blp.alt_response(200, schema=SSE_EVENT, content_type="text/event-stream", description=description,
                            success=True)


# One event of a text/event-stream answer, as a client's SSE parser hands it over.
SSE_EVENT = {
    "type": "object",
    "description": "One server-sent event: `event` names it, `data` is its JSON (which repeats the name)",
    "properties": {"event": {"type": "string"}, "data": {"type": "string"}, "id": {"type": "string"},
                   "retry": {"type": "integer"}},
    "required": ["data"],
}


def ok(data: Any) -> dict:
    return {"success": True, "data": data}


def deleted(what: str) -> dict:
    return {"success": True, "message": f"{what} deleted"}


def validate_json_object(value: Any) -> None:
    if not isinstance(value, dict):
        raise ValidationError("must be a JSON object")
