"""Retrieval tools: the same retrieval as RAG tools, without generation."""
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from app.api.common import MessageSchema, StrictSchema, deleted, envelope, list_envelope, ok
from app.api.rag_tools.schemas import (
    ResultSchema,
    RetrievalToolUpdateSchema,
    RetrievalToolWriteSchema,
    ToolListArgs,
    ToolSchema,
)
from app.auth import current_api_key_id, requires
from app.services import rag, tools

blp = Blueprint("retrieval_tools", __name__, url_prefix="/api/retrieval-tools", description="Retrieval tools")


class SearchSchema(StrictSchema):
    query = fields.String(required=True)
    top_k = fields.Integer()
    filters = fields.Dict(allow_none=True)


class SearchResponseSchema(Schema):
    query = fields.String(required=True)
    results = fields.List(fields.Nested(ResultSchema), required=True)
    latency_ms = fields.Dict()
    trace_id = fields.String()


@blp.route("")
class RetrievalTools(MethodView):
    @requires("viewer")
    @blp.arguments(ToolListArgs, location="query")
    @blp.response(200, list_envelope(ToolSchema))
    def get(self, args):
        """List retrieval tools"""
        return tools.list_tools("retrieval", args)

    @requires("operator")
    @blp.arguments(RetrievalToolWriteSchema)
    @blp.response(202, envelope(ToolSchema))
    def post(self, body):
        """Create a retrieval tool; its indexes build in the background"""
        return ok(tools.create_tool("retrieval", body))


@blp.route("/<tool_id>")
class RetrievalToolById(MethodView):
    @requires("viewer")
    @blp.response(200, envelope(ToolSchema))
    def get(self, tool_id):
        """Get a retrieval tool"""
        return ok(tools.get_tool("retrieval", tool_id))

    @requires("operator")
    @blp.arguments(RetrievalToolUpdateSchema)
    @blp.response(200, envelope(ToolSchema))
    def put(self, body, tool_id):
        """Update a retrieval tool"""
        return ok(tools.update_tool("retrieval", tool_id, body))

    @requires("operator")
    @blp.response(200, MessageSchema)
    def delete(self, tool_id):
        """Delete a retrieval tool (409 while an agent uses it)"""
        tools.delete_tool("retrieval", tool_id)
        return deleted("retrieval tool")


@blp.route("/<tool_id>/search")
class RetrievalSearch(MethodView):
    @requires("operator")
    @blp.arguments(SearchSchema)
    @blp.response(200, envelope(SearchResponseSchema))
    def post(self, body, tool_id):
        """Search: ranked passages with per-stage scores"""
        run = rag.QueryRun(tool=tools.get_tool("retrieval", tool_id), query=body["query"],
                           api_key_id=current_api_key_id())
        rag.retrieve(run, top_k=body.get("top_k"), filters=body.get("filters"))
        trace_id = rag.save_trace(run)
        return ok({"query": run.query, "results": run.results, "latency_ms": run.latency_ms, "trace_id": trace_id})
