"""Agent operations: soul versions, memory notes, messages between agents, hierarchy, agents as code."""
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.agent_ops.schemas import (
    AgentMessageSchema,
    AgentMessageWriteSchema,
    AgentsDocumentSchema,
    CommsArgs,
    HierarchyNodeSchema,
    InboxResultSchema,
    MemorySchema,
    MemoryWriteSchema,
    NoteHistoryArgs,
    NoteVersionSchema,
    RecallArgs,
    RecalledNoteSchema,
    SoulSchema,
    SoulWriteSchema,
    SyncEntrySchema,
    SyncResultSchema,
)
from app.api.common import MessageSchema, deleted, envelope, ok
from app.auth import current_api_key_id, requires
from app.services import agent_hierarchy, agent_messages, agent_notes, agent_soul, agents, agents_sync

blp = Blueprint("agent_ops", __name__, url_prefix="/api/agents",
                description="Agent operations: soul, memory, messages, hierarchy, agents as code")


def _list_of(schema):
    from marshmallow import Schema, fields

    name = schema.__name__.removesuffix("Schema") + "ItemsEnvelope"
    return Schema.from_dict({"success": fields.Boolean(required=True),
                             "data": fields.List(fields.Nested(schema), required=True)}, name=name)


@blp.route("/<agent_id>/soul")
class Soul(MethodView):
    @requires("viewer")
    @blp.response(200, envelope(SoulSchema))
    def get(self, agent_id):
        """The agent's system prompt and its versions, newest first"""
        return ok(agent_soul.soul_of(agent_id))

    @requires("operator")
    @blp.arguments(SoulWriteSchema)
    @blp.response(200, envelope(SoulSchema))
    def put(self, body, agent_id):
        """Set the agent's system prompt: a new text becomes the next version, which the agent uses"""
        return ok(agent_soul.put_soul(agent_id, body["system_prompt"]))


@blp.route("/<agent_id>/memory")
class Memory(MethodView):
    @requires("viewer")
    @blp.response(200, envelope(MemorySchema))
    def get(self, agent_id):
        """The agent's memory notes, by key"""
        return ok(agent_notes.memory_of(agent_id))

    @requires("operator")
    @blp.arguments(MemoryWriteSchema)
    @blp.response(200, envelope(MemorySchema))
    def put(self, body, agent_id):
        """Create or replace notes by key (all or none; each change is kept in the history)"""
        agent_notes.put_notes(agent_id, body["notes"])
        return ok(agent_notes.memory_of(agent_id))


@blp.route("/<agent_id>/memory/history")
class MemoryHistory(MethodView):
    @requires("viewer")
    @blp.arguments(NoteHistoryArgs, location="query")
    @blp.response(200, _list_of(NoteVersionSchema))
    def get(self, args, agent_id):
        """Every change to the agent's notes (or to one key), newest first; deleted notes included"""
        return ok(agent_notes.history(agent_id, args.get("key")))


@blp.route("/<agent_id>/memory/recall")
class MemoryRecall(MethodView):
    @requires("viewer")
    @blp.arguments(RecallArgs, location="query")
    @blp.response(200, _list_of(RecalledNoteSchema))
    @blp.alt_response(409, description="No usable default embedding model to search the notes with")
    def get(self, args, agent_id):
        """Search the agent's notes as its recall tool does (semantic and lexical), best first"""
        agents.get_agent(agent_id)
        return ok(agent_notes.recall(agent_id, args["query"], k=args["limit"]))


@blp.route("/<agent_id>/memory/<path:key>")
class MemoryNote(MethodView):
    @requires("operator")
    @blp.response(200, MessageSchema)
    def delete(self, agent_id, key):
        """Delete one note (its history is kept)"""
        agent_notes.delete_note(agent_id, key)
        return deleted("note")


@blp.route("/message")
class SendMessage(MethodView):
    @requires("operator")
    @blp.arguments(AgentMessageWriteSchema)
    @blp.response(201, envelope(AgentMessageSchema))
    def post(self, body):
        """Send a message from one agent to another (names or ids); it stays unread until processed"""
        message = agent_messages.send(body["sender"], body["recipient"], body["content"], body["type"])
        return ok(agent_messages.payload(message))


@blp.route("/comms")
class Comms(MethodView):
    @requires("viewer")
    @blp.arguments(CommsArgs, location="query")
    @blp.response(200, _list_of(AgentMessageSchema))
    def get(self, args):
        """Messages between agents, newest first (all, or those one agent sent or received)"""
        rows = agent_messages.comms(args.get("agent"), limit=args["limit"], unread=args.get("unread"))
        names = agent_messages.agent_names()
        return ok([agent_messages.payload(m, names) for m in rows])


@blp.route("/<agent_id>/inbox/process")
class InboxProcess(MethodView):
    @requires("operator")
    @blp.response(200, envelope(InboxResultSchema))
    def post(self, agent_id):
        """Answer the agent's unread messages: one turn each, the answer sent back as a reply"""
        agents.get_agent(agent_id)
        return ok({"processed": agent_messages.process_unread_messages(agent_id, api_key_id=current_api_key_id())})


@blp.route("/hierarchy")
class Hierarchy(MethodView):
    @requires("viewer")
    @blp.response(200, _list_of(HierarchyNodeSchema))
    def get(self):
        """Who reports to whom: the agents at the top, each with its reports"""
        return ok(agent_hierarchy.tree())


@blp.route("/sync")
class Sync(MethodView):
    @requires("operator")
    @blp.arguments(AgentsDocumentSchema)
    @blp.response(200, envelope(SyncResultSchema))
    def post(self, body):
        """Create or update agents by name from an agents-as-code document; all checked before any change"""
        return ok(agents_sync.sync_document(body))


@blp.route("/export")
class Export(MethodView):
    @requires("viewer")
    @blp.response(200, envelope(AgentsDocumentSchema))
    def get(self):
        """Every agent as an agents-as-code document (what `magnet agents export` writes)"""
        return ok(agents_sync.export_document())


__all__ = ["blp", "SyncEntrySchema"]
