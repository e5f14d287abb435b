"""Agents: list, edit, and chat with streaming (the conversations API's SSE, read by static/chat.js)."""
from flask import render_template

from app.console.access import page
from app.console.blueprint import bp
from app.console.listing import list_args
from app.services import agents


@bp.get("/agents", endpoint="agents")
@page("viewer")
def agents_page():
    """Every agent with its model, tools and status."""
    listing = agents.list_agents(list_args(sort="created_at"))
    return render_template("console/agents.html", section="Agents", listing=listing)



@bp.get("/agents/<agent_id>")
@page("viewer")
def agent(agent_id):
    """One agent: the edit form and the chat (operators)."""
    return render_template("console/agent.html", section="Agents", agent=agents.get_agent(agent_id))
