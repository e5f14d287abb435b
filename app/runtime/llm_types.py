"""Provider-neutral chat types: what the agent runtime sends to a model and what comes back.

Every provider client (OpenAI and OpenAI-compatible servers, Anthropic, the local extractive answerer)
speaks these types, so the runtime never sees an SDK object. Vocabulary follows OpenAI's chat API,
the one most servers copy: roles are `system | user | assistant | tool`, finish reasons are
`stop | length | tool_calls | content_filter`.

Beside the types: `StreamAssembly` (builds a result from stream pieces), the cl100k token estimates used
when a server reports no usage, and the translations into the two wire shapes providers speak.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from app.common.usage import Usage
from knowledge.tokenizer import count_tokens

__all__ = [
    "ChatMessage",
    "ChatResult",
    "Done",
    "StreamAssembly",
    "StreamEvent",
    "anthropic_messages",
    "TextDelta",
    "ToolCall",
    "ToolCallEvent",
    "ToolCallStarted",
    "ToolSpec",
    "Usage",
    "estimate_completion_tokens",
    "estimate_prompt_tokens",
    "openai_message",
    "parse_arguments",
]


@dataclass(frozen=True)
class ToolCall:
    """One function call the model asked for.

    `raw_arguments` is the JSON text exactly as the model produced it. When it is not a JSON object,
    `arguments` is `{}` and `arguments_error` is True: the agent loop can then tell the model its call
    was malformed instead of running a tool with made-up arguments.
    """

    id: str
    name: str
    arguments: dict[str, Any]
    raw_arguments: str
    arguments_error: bool = False

    @classmethod
    def from_raw(cls, id: str, name: str, raw_arguments: str | None) -> ToolCall:
        arguments, error = parse_arguments(raw_arguments)
        return cls(id=id, name=name, arguments=arguments, raw_arguments=raw_arguments or "",
                   arguments_error=error)


def parse_arguments(raw: str | None) -> tuple[dict[str, Any], bool]:
    """(arguments, malformed) for a tool call's JSON text. Empty text means "no arguments", not an error:
    several OpenAI-compatible servers send "" for functions without parameters."""
    if raw is None or not raw.strip():
        return {}, False
    try:
        value = json.loads(raw)
    except ValueError:
        return {}, True
    return (value, False) if isinstance(value, dict) else ({}, True)


@dataclass(frozen=True)
class ChatMessage:
    """One turn of a conversation.

    - `assistant` turns may carry `tool_calls` (the calls the model made);
    - `tool` turns carry a tool's output in `content` and the `tool_call_id` they answer;
    - `name` is an optional participant or tool name, passed on where the provider supports it.
    """

    role: str
    content: str | None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class ToolSpec:
    """A function the model may call; `parameters` is its JSON Schema (an object schema)."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True)
class ChatResult:
    """The outcome of one chat call.

    `usage` is what the provider reported; when it reported nothing, tokens are counted locally with
    the cl100k tokenizer and `usage_estimated` is True. `latency_ms` is the whole call as the caller
    waited for it, retries included. `citations` is filled by answerers that cite passages (the local
    extractive model), None for the others.
    """

    text: str
    tool_calls: list[ToolCall]
    usage: Usage
    finish_reason: str | None
    model: str
    latency_ms: float
    citations: list[dict[str, Any]] | None = None
    usage_estimated: bool = False


@dataclass(frozen=True)
class TextDelta:
    """A piece of answer text, in order; all deltas of a stream concatenate to `Done.result.text`."""

    text: str


@dataclass(frozen=True)
class ToolCallStarted:
    """The first fragment of a tool call arrived (its arguments come later, in `ToolCallEvent`): from
    here on the round is known to end in a tool call, so its text is the model's thinking."""

    name: str


@dataclass(frozen=True)
class ToolCallEvent:
    """A tool call, emitted once its arguments are complete (streams assemble them from fragments)."""

    tool_call: ToolCall


@dataclass(frozen=True)
class Done:
    """The last event of every stream that did not fail: the same result `complete` would return."""

    result: ChatResult


StreamEvent = TextDelta | ToolCallStarted | ToolCallEvent | Done


@dataclass
class StreamAssembly:
    """What a stream has delivered so far, assembled: text pieces, tool calls from their fragments
    (keyed by the provider's index), usage and finish reason. A stream that ends without `finished`
    (its final event) was cut off."""

    text: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    usage: Usage | None = None
    finish_reason: str | None = None
    model: str | None = None
    finished: bool = False

    def call_fragment(self, index: int, id: str | None, name: str | None, arguments: str | None) -> bool:
        """Add what one event says about tool call `index`; ids and names come once, arguments in pieces.
        True for the first fragment of a call."""
        first = index not in self.calls
        call = self.calls.setdefault(index, {"id": "", "name": "", "arguments": []})
        call["id"] = id or call["id"]
        call["name"] = name or call["name"]
        if arguments:
            call["arguments"].append(arguments)
        return first

    def tool_calls(self) -> list[ToolCall]:
        return [ToolCall.from_raw(c["id"], c["name"], "".join(c["arguments"]))
                for _, c in sorted(self.calls.items())]


def estimate_prompt_tokens(messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] | None = None) -> int:
    """cl100k count of a prompt, for servers that report no usage: each message's text and tool calls,
    4 tokens of framing per message and 3 priming the reply (OpenAI's rule for its chat models), plus
    the tool schemas as JSON. Only an estimate for other tokenizers, but the same every time."""
    total = 3 + sum(4 + count_tokens(m.content or "") + _calls_tokens(m.tool_calls) for m in messages)
    if tools:
        total += count_tokens(json.dumps([t.__dict__ for t in tools], sort_keys=True))
    return total


def estimate_completion_tokens(text: str, tool_calls: Sequence[ToolCall] = ()) -> int:
    """cl100k count of an answer: its text and its tool calls' names and argument text."""
    return count_tokens(text) + _calls_tokens(tool_calls)


def _calls_tokens(calls: Sequence[ToolCall] | None) -> int:
    return sum(count_tokens(c.name) + count_tokens(c.raw_arguments) for c in calls or ())


# -- the two wire shapes every provider speaks (kept beside the types they translate) --


def openai_message(m: ChatMessage) -> dict[str, Any]:
    """One message in the OpenAI chat wire shape (also what OpenAI-compatible servers accept)."""
    wire: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.name and m.role in ("user", "system", "assistant"):
        wire["name"] = m.name
    if m.tool_calls:
        wire["tool_calls"] = [{"id": c.id, "type": "function", "function": {
            "name": c.name, "arguments": c.raw_arguments or json.dumps(c.arguments)}} for c in m.tool_calls]
    if m.role == "tool":
        wire["tool_call_id"] = m.tool_call_id
    return wire


def anthropic_messages(messages: Sequence[ChatMessage]) -> tuple[str, list[dict[str, Any]]]:
    """(system prompt, messages) in Anthropic's shape: system turns go to the separate `system` field,
    tool results become user turns of tool_result blocks, and consecutive turns of one role are merged
    because the API wants user and assistant to alternate."""
    system: list[str] = []
    wire: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            system.append(m.content or "")
            continue
        if m.role == "tool":
            role, blocks = "user", [{"type": "tool_result", "tool_use_id": m.tool_call_id,
                                     "content": m.content or ""}]
        elif m.role == "assistant":
            role = "assistant"
            blocks = [{"type": "text", "text": m.content}] if m.content else []
            blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
                       for c in m.tool_calls or []]
        else:
            role, blocks = "user", [{"type": "text", "text": m.content or ""}]
        if wire and wire[-1]["role"] == role:
            wire[-1]["content"].extend(blocks)
        else:
            wire.append({"role": role, "content": blocks})
    return "\n\n".join(s for s in system if s), wire
