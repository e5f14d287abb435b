"""HTTP tools agents can call. Writes need `operator`, secret headers included: their values are
write-only (encrypted, returned masked, redacted from test results) and must be sent again whenever the
tool's destination changes."""
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.api_tools.schemas import (
    ApiToolCallResultSchema,
    ApiToolListArgs,
    ApiToolSchema,
    ApiToolTestSchema,
    ApiToolUpdateSchema,
    ApiToolWriteSchema,
)
from app.api.common import MessageSchema, deleted, envelope, list_envelope, ok
from app.auth import current_api_key_id, requires
from app.services import api_tools

blp = Blueprint("api_tools", __name__, url_prefix="/api/api-tools", description="HTTP tools for agents")


@blp.route("")
class ApiTools(MethodView):
    @requires("viewer")
    @blp.arguments(ApiToolListArgs, location="query")
    @blp.response(200, list_envelope(ApiToolSchema))
    def get(self, args):
        """List API tools (filter by method)"""
        return api_tools.list_api_tools(args)

    @requires("operator")
    @blp.arguments(ApiToolWriteSchema)
    @blp.response(201, envelope(ApiToolSchema))
    def post(self, body):
        """Add an API tool; secret header values are encrypted and only ever returned masked"""
        return ok(api_tools.create_api_tool(body))


@blp.route("/<tool_id>")
class ApiToolById(MethodView):
    @requires("viewer")
    @blp.response(200, envelope(ApiToolSchema))
    def get(self, tool_id):
        """Get one API tool"""
        return ok(api_tools.get_api_tool(tool_id))

    @requires("operator")
    @blp.arguments(ApiToolUpdateSchema)
    @blp.response(200, envelope(ApiToolSchema))
    def put(self, body, tool_id):
        """Update an API tool; only the fields sent change (a secret header without value keeps it)"""
        return ok(api_tools.update_api_tool(tool_id, body))

    @requires("operator")
    @blp.response(200, MessageSchema)
    def delete(self, tool_id):
        """Delete an API tool (refused while an agent uses it)"""
        api_tools.delete_api_tool(tool_id)
        return deleted("API tool")


@blp.route("/<tool_id>/test")
class ApiToolTest(MethodView):
    @requires("operator")
    @blp.arguments(ApiToolTestSchema)
    @blp.response(200, envelope(ApiToolCallResultSchema))
    def post(self, body, tool_id):
        """Call the tool for real with an input; returns status, latency, a few headers and the body"""
        return ok(api_tools.try_api_tool(tool_id, body["input"], api_key_id=current_api_key_id()))
