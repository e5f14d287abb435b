"""One agent asking another during its turn (`ask_agent`), and turns run without a conversation.

A delegated turn runs inside the caller's tool call, so it inherits the caller's metering context: its
ledger rows carry the caller's conversation and add to the caller's message's usage; their details name
the caller agent and message (`delegated_by`, `caller_message_id`). Who is asking whom is a context
variable (it follows the tool threads, app.runtime.timeouts), which is how a cycle (A asks B asks A) and
a chain deeper than `agent_delegation_max_depth` are refused: the refusal is a tool error the model reads.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from flask import current_app

from app.errors import Conflict, NotFound, ValidationFailed
from app.extensions import db
from app.runtime import memory
from app.runtime.agent import Limits, TurnInput, TurnResult, run_turn
from app.runtime.llm_types import ChatMessage
from app.runtime.providers import DEFAULT_TIMEOUT, client_for


@dataclass(frozen=True)
class TurnScope:
    agent_id: str
    message_id: str | None  # the assistant message the turn writes (None: not in a conversation)
    chain: tuple[str, ...]  # agent ids asking, outermost first, this turn's agent last


_scope: ContextVar[TurnScope | None] = ContextVar("magnet_agent_turn", default=None)


@contextlib.contextmanager
def turn_scope(agent_id: str, message_id: str | None) -> Iterator[TurnScope]:
    """Mark the running turn as `agent_id`'s (a delegated turn extends the chain of the turn asking)."""
    outer = _scope.get()
    chain = (*outer.chain, agent_id) if outer is not None else (agent_id,)
    token = _scope.set(TurnScope(agent_id, message_id or (outer.message_id if outer else None), chain))
    try:
        yield _scope.get()
    finally:
        _scope.reset(token)


def current_scope() -> TurnScope | None:
    return _scope.get()


def run_agent_once(agent_id: str, prompt: str, *, api_key_id: str | None = None, details: dict | None = None,
                   timeout: float | None = None) -> TurnResult:
    """One turn of the agent on `prompt`, with no conversation history (its memory notes still apply).
    Raises MagnetError when the agent cannot run or the turn fails."""
    from app.services import agent_tools, agents, turns

    agent = agents.get_agent(agent_id)
    if agent.status == "inactive":
        raise Conflict(f"Agent {agent.name} is inactive.", code="agent_inactive", details={"agent_id": agent.id})
    model = turns.model_of(agent)
    local = model.provider == "local"
    tools = agent_tools.build(agent, api_key_id=api_key_id, local=local)
    window = model.context_window or memory.DEFAULT_CONTEXT_WINDOW
    db.session.commit()  # no transaction open while memory is searched and the model works
    fitted = memory.fit(turns.system_messages(agent, tools, [], prompt), [], ChatMessage(role="user", content=prompt),
                        max_messages=0, context_window=window,
                        reserve_tokens=memory.answer_reserve(agent.max_tokens, window), tools=[t.spec for t in tools])
    if not fitted.fits:
        raise ValidationFailed(f"The message is too long for {model.name}'s context window.",
                               code="context_window_exceeded",
                               details={"prompt_tokens": fitted.prompt_tokens, "budget_tokens": fitted.budget})
    turn_timeout = min(agent.turn_timeout_seconds, timeout) if timeout else agent.turn_timeout_seconds
    limits = Limits(max_iterations=agent.max_iterations, tool_timeout=agent.tool_timeout_seconds,
                    turn_timeout=turn_timeout, model_timeout=min(DEFAULT_TIMEOUT, turn_timeout))
    request = TurnInput(messages=fitted.messages, query=prompt, tools=tools, client=client_for(model), limits=limits,
                        prompt_budget=fitted.budget, temperature=agent.temperature, max_tokens=agent.max_tokens,
                        local=local, stream=False, on_model_call=turns.meter(agent.id, model.id, details))
    agent_id = agent.id
    db.session.commit()
    with turn_scope(agent_id, None):
        return run_turn(request, lambda event: None)


def ask(callee_reference: str, question: str, *, api_key_id: str | None = None) -> TurnResult:
    """Run `callee`'s turn on `question` for the turn in scope; refuses cycles and chains too deep."""
    from app.services.agent_hierarchy import resolve_agent

    scope = current_scope()
    if scope is None:  # the tool only exists inside a turn
        raise Conflict("ask_agent can only be used during an agent's turn.", code="no_turn")
    callee = resolve_agent(callee_reference)
    if callee is None:
        raise NotFound(f"There is no agent '{callee_reference}'.", details={"agent": callee_reference})
    names = _names(scope.chain)
    if callee.id in scope.chain:
        path = " -> ".join([*(names[i] for i in scope.chain), callee.name])
        raise ValidationFailed(f"Refused: asking {callee.name} would make a cycle ({path}); {callee.name} is "
                               "already waiting on this request. Answer with what you have.",
                               code="delegation_cycle", details={"chain": [*scope.chain, callee.id]})
    config = current_app.extensions["magnet.config"]
    if len(scope.chain) > config.agent_delegation_max_depth:
        raise ValidationFailed(f"Refused: delegation is limited to {config.agent_delegation_max_depth} levels "
                               f"and this request is already {len(scope.chain) - 1} deep "
                               f"({' -> '.join(names[i] for i in scope.chain)}). Answer with what you have.",
                               code="delegation_depth", details={"max_depth": config.agent_delegation_max_depth})
    details = {"delegated_by": scope.agent_id, "caller_message_id": scope.message_id,
               "delegation_chain": list(scope.chain)}
    return run_agent_once(callee.id, question, api_key_id=api_key_id, details=details,
                          timeout=config.agent_delegation_timeout_seconds)


def _names(ids) -> dict[str, str]:
    from app.models import Agent

    rows = db.session.execute(db.select(Agent.id, Agent.name).where(Agent.id.in_(list(ids)))).all()
    found = dict(rows)
    return {i: found.get(i, i) for i in ids}
