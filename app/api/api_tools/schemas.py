import re

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.api.common import PartialSchema, StrictBoolean, StrictSchema, UtcDateTime, list_args
from app.models import HTTP_METHODS

# RFC 9110 token characters.
HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Set by the HTTP client from the URL and body; letting a tool set them invites request smuggling.
RESERVED_HEADERS = {
    "host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer", "keep-alive",
    "proxy-authorization", "proxy-connection",
}


def _header_name(value: str) -> None:
    if not HEADER_NAME.match(value):
        raise ValidationError("not a valid header name")
    if value.lower() in RESERVED_HEADERS:
        raise ValidationError(f"{value} is set by Magnet and cannot be configured")


def _header_value(value: str | None) -> None:
    if value is not None and any(ch in value for ch in "\r\n\0"):
        raise ValidationError("header values cannot contain line breaks or NUL")


class ApiToolHeaderSchema(StrictSchema):
    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), _header_name])
    value = fields.String(
        allow_none=True, validate=[validate.Length(min=1, max=4000), _header_value],
        metadata={"description": "Required, except for a secret header that already has a stored value "
                                 "(omit it or send null to keep that value)"},
    )
    secret = StrictBoolean(load_default=False, metadata={"description": "Encrypted at rest; returned masked"})

    @validates_schema
    def _name_required(self, data, **kwargs):
        # Update bodies load with partial=True, which reaches nested schemas: keep `name` required here.
        if "name" not in data:
            raise ValidationError("Missing data for required field.", "name")


class ApiToolHeaderOutSchema(Schema):
    name = fields.String(required=True)
    secret = fields.Boolean(required=True)
    value = fields.String(metadata={"description": "Only for headers that are not secret"})
    value_masked = fields.String(metadata={"description": "Only for secret headers; the value itself is never returned"})


class ApiToolSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String(allow_none=True)
    method = fields.String(required=True, metadata={"enum": list(HTTP_METHODS)})
    url_template = fields.String(required=True)
    headers = fields.List(fields.Nested(ApiToolHeaderOutSchema), required=True)
    input_schema = fields.Dict(required=True)
    timeout_seconds = fields.Float(required=True)
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


class ApiToolWriteSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(allow_none=True, validate=validate.Length(max=5000))
    method = fields.String(required=True, validate=validate.OneOf(HTTP_METHODS))
    url_template = fields.String(
        required=True, validate=validate.Length(min=1, max=2000),
        metadata={"description": "http(s) URL; {{var}} placeholders (path, query, fragment only) are "
                                 "filled, URL-encoded, from the call's input"},
    )
    headers = fields.List(fields.Nested(ApiToolHeaderSchema), load_default=list, validate=validate.Length(max=50))
    input_schema = fields.Dict(
        keys=fields.String(),
        metadata={"description": "JSON Schema (an object schema) the call's input must match; default {\"type\": \"object\"}. "
                                 "For POST/PUT/PATCH the input not used by the URL is sent as the JSON body"},
    )
    timeout_seconds = fields.Float(load_default=10.0, validate=validate.Range(min=0.1, max=120))

    @validates_schema
    def _unique_header_names(self, data, **kwargs):
        names = [h["name"].lower() for h in data.get("headers") or [] if "name" in h]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValidationError(f"duplicate header names: {', '.join(duplicates)}", "headers")


class ApiToolUpdateSchema(PartialSchema, ApiToolWriteSchema):
    """Every field optional: only the fields sent change; `headers`, when sent, replaces the list."""


class ApiToolTestSchema(StrictSchema):
    input = fields.Dict(keys=fields.String(), load_default=dict,
                        metadata={"description": "The tool's input; must match its input_schema"})


class ApiToolCallResultSchema(Schema):
    status_code = fields.Integer(required=True)
    url = fields.String(required=True, metadata={"description": "The URL called (placeholders filled)"})
    latency_ms = fields.Float(required=True)
    headers = fields.Dict(keys=fields.String(), values=fields.String(),
                          metadata={"description": "A few response headers (content-type, location, ...)"})
    body = fields.String(required=True, metadata={"description": "The first 64 KiB; secret values redacted"})
    truncated = fields.Boolean(required=True)


ApiToolListArgs = list_args(
    "name",
    "updated_at",
    extra={"method": fields.String(validate=validate.OneOf(HTTP_METHODS))},
    name="ApiToolListArgs",
)
