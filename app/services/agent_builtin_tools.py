"""Built-in tools an agent opts into by listing their names with its tools: `remember` and `recall`
(its memory notes, app.services.agent_notes) and `ask_agent` (delegation, app.services.agent_delegation).

Like the other tools, each runner opens its own app context: the runtime runs tool calls in threads.
"""
from __future__ import annotations

from typing import Any

from flask import Flask, current_app

from app.errors import ValidationFailed
from app.models import Agent
from app.runtime.agent import AgentTool, Progress, ToolOutput
from app.runtime.llm_types import ToolSpec

_SPECS = {
    "remember": ToolSpec(
        name="remember",
        description="Save a note in your long-term memory (kept across conversations). Saving under an "
                    "existing key replaces that note.",
        parameters={"type": "object", "properties": {
            "key": {"type": "string", "description": "A short name for the note, e.g. 'customer-acme-plan'"},
            "text": {"type": "string", "description": "What to remember"},
            "tags": {"type": "array", "items": {"type": "string"}}},
            "required": ["key", "text"]}),
    "recall": ToolSpec(
        name="recall",
        description="Search your long-term memory: returns the saved notes most relevant to the query.",
        parameters={"type": "object", "properties": {
            "query": {"type": "string", "description": "What you are trying to remember"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 20}},
            "required": ["query"]}),
    "ask_agent": ToolSpec(
        name="ask_agent",
        description="Ask another agent (by name) a question and get its answer; use it to delegate work "
                    "that agent is better placed to do.",
        parameters={"type": "object", "properties": {
            "agent": {"type": "string", "description": "The other agent's name"},
            "question": {"type": "string", "description": "A complete, standalone question or request"}},
            "required": ["agent", "question"]}),
}


def build(agent: Agent, *, api_key_id: str | None) -> list[AgentTool]:
    """The built-in tools this agent opted into, in its order."""
    app = current_app._get_current_object()
    runners = {"remember": _remember, "recall": _recall, "ask_agent": _ask_agent}
    return [AgentTool(_SPECS[name], f"builtin:{name}", "builtin", runners[name](app, agent.id, api_key_id))
            for name in agent.tools or [] if name in _SPECS]


def _text_argument(arguments: dict, name: str, max_chars: int = 20_000) -> str:
    value = arguments.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed(f"'{name}' must be a non-empty string.", details={"fields": {name: ["required"]}})
    if len(value) > max_chars:
        raise ValidationFailed(f"'{name}' is longer than {max_chars} characters.")
    return value.strip()


def _remember(app: Flask, agent_id: str, api_key_id: str | None):
    def run(arguments: dict[str, Any], progress: Progress) -> ToolOutput:
        from app.services import agent_notes

        key, text = _text_argument(arguments, "key", 200), _text_argument(arguments, "text")
        tags = arguments.get("tags") or []
        with app.app_context():
            agent_notes.put_notes(agent_id, [{"key": key, "text": text, "tags": tags}], changed_by="agent")
        return ToolOutput(text=f"Saved to memory as '{key}'.", data={"key": key})
    return run


def _recall(app: Flask, agent_id: str, api_key_id: str | None):
    def run(arguments: dict[str, Any], progress: Progress) -> ToolOutput:
        from app.services import agent_notes

        query = _text_argument(arguments, "query")
        limit = arguments.get("limit") or agent_notes.DEFAULT_RECALL
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 20:
            raise ValidationFailed("'limit' must be an integer from 1 to 20.")
        with app.app_context():
            found = agent_notes.recall(agent_id, query, k=limit)
        if not found:
            return ToolOutput(text="No note in your memory matches.", data={"notes": 0})
        lines = [f"- {n['key']}: {n['text']}" + (f" (tags: {', '.join(n['tags'])})" if n["tags"] else "")
                 for n in found]
        return ToolOutput(text="Notes from your memory, most relevant first:\n" + "\n".join(lines),
                          data={"notes": len(found), "keys": [n["key"] for n in found]})
    return run


def _ask_agent(app: Flask, agent_id: str, api_key_id: str | None):
    def run(arguments: dict[str, Any], progress: Progress) -> ToolOutput:
        from app.services import agent_delegation

        callee, question = _text_argument(arguments, "agent", 200), _text_argument(arguments, "question")
        with app.app_context():
            progress(f"Asking {callee}")
            result = agent_delegation.ask(callee, question, api_key_id=api_key_id)
        return ToolOutput(text=f"{callee} answered: {result.content}", data={"agent": callee,
                                                                            "no_answer": result.no_answer})
    return run
