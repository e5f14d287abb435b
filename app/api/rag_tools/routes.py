"""RAG tools: retrieval over synced sources plus a grounded, cited answer."""
from flask import Response, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.common import MessageSchema, deleted, envelope, event_stream, list_envelope, ok
from app.api.rag_tools.schemas import (
    QueryResponseSchema,
    QuerySchema,
    RagToolSchema,
    RagToolUpdateSchema,
    RagToolWriteSchema,
    ToolListArgs,
)
from app.auth import current_api_key_id, requires
from app.services import rag, tools

blp = Blueprint("rag_tools", __name__, url_prefix="/api/rag-tools", description="RAG tools")


@blp.route("")
class RagTools(MethodView):
    @requires("viewer")
    @blp.arguments(ToolListArgs, location="query")
    @blp.response(200, list_envelope(RagToolSchema))
    def get(self, args):
        """List RAG tools with their index status"""
        return tools.list_tools("rag", args)

    @requires("operator")
    @blp.arguments(RagToolWriteSchema)
    @blp.response(202, envelope(RagToolSchema))
    def post(self, body):
        """Create a RAG tool; its indexes build in the background (see `status`)"""
        return ok(tools.create_tool("rag", body))


@blp.route("/<tool_id>")
class RagToolById(MethodView):
    @requires("viewer")
    @blp.response(200, envelope(RagToolSchema))
    def get(self, tool_id):
        """Get a RAG tool and its index status"""
        return ok(tools.get_tool("rag", tool_id))

    @requires("operator")
    @blp.arguments(RagToolUpdateSchema)
    @blp.response(200, envelope(RagToolSchema))
    def put(self, body, tool_id):
        """Update a RAG tool; changed index settings build a new index in the background"""
        return ok(tools.update_tool("rag", tool_id, body))

    @requires("operator")
    @blp.response(200, MessageSchema)
    def delete(self, tool_id):
        """Delete a RAG tool (409 while an agent uses it)"""
        tools.delete_tool("rag", tool_id)
        return deleted("RAG tool")


@blp.route("/<tool_id>/query")
class RagQuery(MethodView):
    @requires("operator")
    @blp.arguments(QuerySchema)
    @blp.response(200, envelope(QueryResponseSchema))
    @event_stream(blp, "The passages and answer; with `stream: true`, server-sent events")
    @blp.alt_response(409, description="The tool's index is still building (details.progress)")
    @blp.alt_response(502, description="The answer model failed (upstream_error)")
    @blp.alt_response(504, description="The answer model ran out of time (timeout)")
    def post(self, body, tool_id):
        """Query: retrieved passages, a cited answer or an explicit no-answer; `stream: true` answers with SSE"""
        if body.get("stream"):
            events = rag.stream(tool_id, body, current_api_key_id())
            return Response(stream_with_context(events), mimetype="text/event-stream",
                            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        return ok(rag.query(tool_id, body, current_api_key_id()))
