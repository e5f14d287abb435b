"""Agents: a chat model, a system prompt and the tools it may call."""
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.agents.schemas import AgentListArgs, AgentSchema, AgentUpdateSchema, AgentWriteSchema
from app.api.common import MessageSchema, deleted, envelope, list_envelope, ok
from app.auth import requires
from app.services import agent_presence, agents

blp = Blueprint("agents", __name__, url_prefix="/api/agents", description="Agents and their tools")


@blp.route("")
class Agents(MethodView):
    @requires("viewer")
    @blp.arguments(AgentListArgs, location="query")
    @blp.response(200, list_envelope(AgentSchema))
    def get(self, args):
        """List agents with their presence (filter by status, model, presence or role)"""
        return agent_presence.list_agents(args)

    @requires("operator")
    @blp.arguments(AgentWriteSchema)
    @blp.response(201, envelope(AgentSchema))
    def post(self, body):
        """Create an agent; without model_id it uses the default chat model, and every tool must exist"""
        return ok(agent_presence.describe_one(agents.create_agent(body)))


@blp.route("/<agent_id>")
class AgentById(MethodView):
    @requires("viewer")
    @blp.response(200, envelope(AgentSchema))
    def get(self, agent_id):
        """Get one agent"""
        return ok(agent_presence.describe_one(agents.get_agent(agent_id)))

    @requires("operator")
    @blp.arguments(AgentUpdateSchema)
    @blp.response(200, envelope(AgentSchema))
    def put(self, body, agent_id):
        """Update an agent; only the fields sent change"""
        return ok(agent_presence.describe_one(agents.update_agent(agent_id, body)))

    @requires("operator")
    @blp.response(200, MessageSchema)
    def delete(self, agent_id):
        """Delete an agent"""
        agents.delete_agent(agent_id)
        return deleted("agent")


# Heartbeat, wake and the leaderboard live beside these routes, on the same blueprint.
from app.api.agents import operations  # noqa: E402,F401
