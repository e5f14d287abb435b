"""Agents: list (with presence), edit, chat with streaming (the conversations API's SSE, read by
static/chat.js), and the agent's operations: its tasks, presence and task counts, heartbeat, memory notes
and messages with other agents (app.services, as /api/tasks and /api/agents/... show them)."""
from flask import render_template

from app.console.access import page
from app.console.blueprint import bp
from app.console.listing import list_args
from app.models import TASK_PRIORITIES
from app.services import agent_messages, agent_notes, agent_presence, agents, tasks

COMMS_SHOWN = 50


@bp.get("/agents", endpoint="agents")
@page("viewer")
def agents_page():
    """Every agent with its presence, model, tools and status."""
    listing = agent_presence.list_agents(list_args(sort="created_at"))
    return render_template("console/agents.html", section="Agents", listing=listing)


@bp.get("/agents/<agent_id>")
@page("viewer")
def agent(agent_id):
    """One agent: chat and settings (operators), then its tasks, heartbeat, memory and messages."""
    found = agents.get_agent(agent_id)
    names = agent_messages.agent_names()
    comms = [agent_messages.payload(m, names) for m in agent_messages.comms(found.id, limit=COMMS_SHOWN)]
    return render_template("console/agent.html", section="Agents", agent=agent_presence.describe_one(found),
                           tasks=tasks.list_tasks(list_args(sort="created_at", agent_id=found.id)),
                           priorities=TASK_PRIORITIES, heartbeat=agent_presence.heartbeat(found.id),
                           memory=agent_notes.memory_of(found.id), comms=comms,
                           others=sorted(((name, i) for i, name in names.items() if i != found.id)))
