from marshmallow import Schema, fields, validate

from app.api.common import PartialSchema, StrictSchema, UtcDateTime, limit_field, list_args, page_field
from app.models import TEMPLATE_TYPES

# Versions count edits; a number past this is no version (and would overflow the database's integer).
MAX_VERSION = 2_147_483_647

MAX_TEMPLATE_CHARS = 200_000
VARIABLE_NAME = validate.Regexp(
    r"^[A-Za-z_][A-Za-z0-9_]*$", error="must be an identifier (letters, digits, _; not starting with a digit)"
)


class PromptTemplateSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String(allow_none=True)
    type = fields.String(required=True, metadata={"enum": list(TEMPLATE_TYPES)})
    template = fields.String(required=True)
    variables = fields.List(fields.String(), required=True)
    version = fields.Integer(required=True, metadata={"description": "The current version number"})
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


class PromptTemplateVersionSchema(Schema):
    id = fields.String(required=True)
    template_id = fields.String(required=True)
    version = fields.Integer(required=True)
    name = fields.String(required=True)
    description = fields.String(allow_none=True)
    template = fields.String(required=True)
    variables = fields.List(fields.String(), required=True)
    created_at = UtcDateTime(required=True)


class PromptTemplateWriteSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(allow_none=True, validate=validate.Length(max=10_000))
    type = fields.String(
        required=True,
        validate=validate.OneOf(TEMPLATE_TYPES),
        metadata={"description": "Fixed at creation; rag templates must use {{context}} and {{query}}"},
    )
    template = fields.String(
        required=True,
        validate=validate.Length(min=1, max=MAX_TEMPLATE_CHARS),
        metadata={"description": "Text with {{variable}} placeholders ({{ variable }} also works)"},
    )
    variables = fields.List(
        fields.String(validate=VARIABLE_NAME),
        load_default=list,
        validate=validate.Length(max=100),
        metadata={"description": "Every placeholder the template uses, and no other"},
    )


class PromptTemplateUpdateSchema(PartialSchema, PromptTemplateWriteSchema):
    """Every field optional: only the fields sent change. `type` may be sent only unchanged."""


class PromptValue(fields.Field):
    """A variable's value: a string, number or boolean, inserted with str()."""

    default_error_messages = {"invalid": "must be a string, number or boolean"}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str | int | float | bool):
            return value
        raise self.make_error("invalid")


class RenderSchema(StrictSchema):
    variables = fields.Dict(
        keys=fields.String(),
        values=PromptValue(metadata={"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}),
        load_default=dict,
        metadata={"description": "A value for every declared variable, and nothing else"},
    )
    version = fields.Integer(
        strict=True,
        allow_none=True,
        validate=validate.Range(min=1, max=MAX_VERSION),
        metadata={"description": "Render this version instead of the current one"},
    )


class RenderResultSchema(Schema):
    text = fields.String(required=True)
    token_count = fields.Integer(required=True, metadata={"description": "cl100k_base tokens in text"})
    version = fields.Integer(required=True)
    template_id = fields.String(required=True)


PromptTemplateListArgs = list_args(
    "name",
    "updated_at",
    extra={"type": fields.String(validate=validate.OneOf(TEMPLATE_TYPES))},
    name="PromptTemplateListArgs",
)

# Versions are always listed newest first, by version number; only the page is chosen.
PromptTemplateVersionListArgs = Schema.from_dict(
    {
        "page": page_field(),
        "limit": limit_field(),
    },
    name="PromptTemplateVersionListArgs",
)
