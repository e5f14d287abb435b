"""Conversations with agents: multi-turn, tool-using, remembered, and streamed on request."""
from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.common import MessageSchema, envelope, event_stream, list_envelope, ok
from app.api.conversations.schemas import (
    ChatMessageSchema,
    ConversationDetailSchema,
    ConversationListArgs,
    ConversationSchema,
    ConversationWriteSchema,
    MessageListArgs,
    SendMessageSchema,
)
from app.auth import current_api_key_id, current_user_id, requires
from app.services import attachments, conversations, turns

blp = Blueprint("conversations", __name__, url_prefix="/api/conversations", description="Conversations with agents")


@blp.route("")
class Conversations(MethodView):
    @requires("viewer")
    @blp.arguments(ConversationListArgs, location="query")
    @blp.response(200, list_envelope(ConversationSchema))
    def get(self, args):
        """List conversations (filter by agent_id, user_id, integration_id)"""
        return conversations.list_conversations(args)

    @requires("operator")
    @blp.arguments(ConversationWriteSchema)
    @blp.response(201, envelope(ConversationSchema))
    def post(self, body):
        """Open a conversation with an agent (signed in without a `user_id`: yours)"""
        return ok(conversations.create_conversation(body["agent_id"], body.get("user_id") or current_user_id()))


@blp.route("/<conversation_id>")
class ConversationById(MethodView):
    @requires("viewer")
    @blp.response(200, envelope(ConversationDetailSchema))
    def get(self, conversation_id):
        """Get a conversation with its messages (tool calls, citations, usage) and attachments"""
        return ok(conversations.with_messages(conversations.get_conversation(conversation_id)))

    @requires("operator")
    @blp.response(200, MessageSchema)
    @blp.alt_response(409, description="A message is being answered (code turn_in_progress): clear after it")
    def delete(self, conversation_id):
        """Clear a conversation's history: its messages and attachments (the usage ledger keeps its rows)"""
        removed = conversations.clear_history(conversation_id)
        return {"success": True, "message": f"Conversation history cleared ({removed} messages removed)."}


@blp.route("/<conversation_id>/messages")
class ConversationMessages(MethodView):
    @requires("viewer")
    @blp.arguments(MessageListArgs, location="query")
    @blp.response(200, list_envelope(ChatMessageSchema))
    def get(self, args, conversation_id):
        """List a conversation's messages, a page at a time (newest first unless `order=asc`; filter by role)"""
        return conversations.list_messages(conversation_id, args)

    @requires("operator")
    @blp.arguments(SendMessageSchema)
    @blp.response(200, envelope(ChatMessageSchema))
    @event_stream(blp, "The agent's answer; with `stream: true`, the turn's events as server-sent events")
    @blp.alt_response(502, description="The agent's model failed (provider error, broken stream)")
    @blp.alt_response(504, description="The agent's turn ran out of time")
    def post(self, body, conversation_id):
        """Send a message; the agent's answer, or with `stream: true` an SSE stream of the turn's events"""
        conversation = conversations.get_conversation(conversation_id)
        files = attachments.extract_attachments(body["attachments"])
        turn = turns.prepare(conversation, body["message"], api_key_id=current_api_key_id(), attachments=files,
                              user_id=current_user_id())
        if body["stream"]:
            events = turns.stream(turn, verbosity=body["verbosity"], shape=lambda message: message)
            return Response(events, mimetype="text/event-stream",
                            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        return ok(turns.run(turn))
