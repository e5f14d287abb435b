"""Prompt templates with `{{variable}}` placeholders, an immutable version history, and rendering."""
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.common import MessageSchema, deleted, envelope, list_envelope, ok
from app.api.prompt_templates.schemas import (
    PromptTemplateListArgs,
    PromptTemplateSchema,
    PromptTemplateUpdateSchema,
    PromptTemplateVersionListArgs,
    PromptTemplateVersionSchema,
    PromptTemplateWriteSchema,
    RenderResultSchema,
    RenderSchema,
)
from app.auth import requires
from app.services import prompt_templates

blp = Blueprint(
    "prompt_templates",
    __name__,
    url_prefix="/api/prompt-templates",
    description="Prompt templates, their versions, and rendering",
)


@blp.route("")
class PromptTemplates(MethodView):
    @requires("viewer")
    @blp.arguments(PromptTemplateListArgs, location="query")
    @blp.response(200, list_envelope(PromptTemplateSchema))
    def get(self, args):
        """List prompt templates (filter by type)"""
        return prompt_templates.list_templates(args)

    @requires("operator")
    @blp.arguments(PromptTemplateWriteSchema)
    @blp.response(201, envelope(PromptTemplateSchema))
    def post(self, body):
        """Create a prompt template; it is stored as version 1"""
        return ok(prompt_templates.create_template(body))


@blp.route("/<template_id>")
class PromptTemplateById(MethodView):
    @requires("viewer")
    @blp.response(200, envelope(PromptTemplateSchema))
    def get(self, template_id):
        """Get one prompt template (its current version)"""
        return ok(prompt_templates.get_template(template_id))

    @requires("operator")
    @blp.arguments(PromptTemplateUpdateSchema)
    @blp.response(200, envelope(PromptTemplateSchema))
    def put(self, body, template_id):
        """Update a prompt template; only the fields sent change, and a change makes a new version"""
        return ok(prompt_templates.update_template(template_id, body))

    @requires("operator")
    @blp.response(200, MessageSchema)
    def delete(self, template_id):
        """Delete a prompt template and all its versions"""
        prompt_templates.delete_template(template_id)
        return deleted("prompt template")


@blp.route("/<template_id>/versions")
class PromptTemplateVersions(MethodView):
    @requires("viewer")
    @blp.arguments(PromptTemplateVersionListArgs, location="query")
    @blp.response(200, list_envelope(PromptTemplateVersionSchema))
    def get(self, args, template_id):
        """List a prompt template's versions, newest first"""
        return prompt_templates.list_versions(template_id, args)


@blp.route("/<template_id>/versions/<int(min=1, max=2147483647):version>")  # schemas.MAX_VERSION
class PromptTemplateVersionByNumber(MethodView):
    @requires("viewer")
    @blp.response(200, envelope(PromptTemplateVersionSchema))
    def get(self, template_id, version):
        """Get one version of a prompt template (versions never change)"""
        return ok(prompt_templates.get_version(template_id, version))


@blp.route("/<template_id>/render")
class PromptTemplateRender(MethodView):
    @requires("operator")
    @blp.arguments(RenderSchema)
    @blp.response(200, envelope(RenderResultSchema))
    def post(self, body, template_id):
        """Render a prompt template (current or a given version) with values for its variables"""
        return ok(prompt_templates.render_template(template_id, body["variables"], body.get("version")))
