"""The agent loop: a model that may call tools, run until it answers, within limits.

One turn: the model sees the conversation and the agent's tools as function schemas; each tool call it
makes is run (with a per-tool timeout) and its output fed back; this repeats until the model answers
without calling a tool, or the limits end it. What can go wrong is told to the model, not raised:
- a tool that fails or times out: its error becomes the tool result, so the model can try otherwise;
- malformed arguments or an unknown tool name: the same, with what was wrong;
- the same call (tool and arguments) made again: not re-run; the model is told it has that result, and
  the next round offers no tools, so it must answer with what it has;
- `max_iterations` rounds used: the last round offers no tools.
Only the model's own failures (provider errors, a broken stream) and the whole-turn timeout end the turn
with an error (`UpstreamError` 502 / `UpstreamTimeout` 504).

The runtime knows no database and no Flask: tools arrive as `AgentTool` callables, metering as
`on_model_call`, and everything worth showing a user goes to `emit` as an event dict
(`thinking.chunk`, `text.chunk`, `tool.started`, `tool.progress`, `tool.completed`).

Text the model writes in a round that ends in tool calls is its thinking (`thinking.chunk`), not the
answer. In rounds that offer tools the text is held back until it is known which it is: a tool call
begins (thinking), the round ends without one (answer), or `ANSWER_AFTER_CHARS` of text came with no call
begun: then it is streamed as the answer from there on (and if a call still follows, that text stays in
the answer, so the text chunks always add up to the message). Rounds without tools stream as they come.

The built-in local model (`local=True`) cannot call tools itself; the runtime does what it would: call
the agent's first RAG tool (else its first retrieval tool) with the user's message, then answer by
quoting the passages found (app.runtime.extractive).
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.errors import MagnetError, UpstreamTimeout
from app.runtime.extractive import content_terms
from app.runtime.llm_types import (
    ChatMessage,
    ChatResult,
    Done,
    TextDelta,
    ToolCall,
    ToolCallStarted,
    ToolSpec,
)
from app.runtime.memory import trim_tool_results
from app.runtime.timeouts import Overran, run_with_timeout

Emit = Callable[[dict[str, Any]], None]
Progress = Callable[[str], None]
CITATION = re.compile(r"\[(\d{1,3})\]")
MAX_TOOL_CONTENT_CHARS = 12_000  # what one tool result may add to the prompt
MAX_PASSAGE_CHARS = 2_000
MAX_STORED_OUTPUT_CHARS = 4_000  # what a message keeps of a tool's output, for people reading it
NO_ANSWER_TEXT = "I could not find an answer to that in the knowledge available to me."
# In a round that offers tools, text is held until it is known to be the answer: the round ends without
# a tool call, or this much text came with no tool call begun (a preamble before a tool call is short).
ANSWER_AFTER_CHARS = 200
# A follow-up leans on the question before it: it opens with a connective or points back with a pronoun,
# and is short (a question with more content words than this carries its own subject).
FOLLOW_UP = re.compile(r"^\W*(and|but|also|so|then|what about|how about|what if)\b"
                       r"|\b(it|its|they|them|their|those|these|that|this|ones?)\b", re.IGNORECASE)
FOLLOW_UP_MAX_TERMS = 3
CITE_INSTRUCTION = ("Tool results number their passages [1], [2], ...: cite the passages you use with "
                    "those numbers, and say so when the tools found nothing that answers the question.")


@dataclass(frozen=True)
class Passage:
    """A piece of knowledge a tool returned, citable by its number in the turn."""

    text: str
    source: str | None = None
    document_id: str | None = None
    chunk_id: str | None = None
    title: str | None = None
    section: str | None = None  # heading path, "Billing > Refunds"
    page: int | None = None


@dataclass
class ToolOutput:
    text: str  # what the model reads (passages are appended, numbered, by the runtime)
    passages: list[Passage] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # a summary kept on the message


@dataclass(frozen=True)
class AgentTool:
    """One tool as the model sees it (`spec`) and as the runtime runs it (`run(arguments, progress)`).
    `run` raises MagnetError for a failure worth telling the model about."""

    spec: ToolSpec
    tool_id: str
    kind: str  # rag | retrieval | api | builtin
    run: Callable[[dict[str, Any], Progress], ToolOutput]


@dataclass(frozen=True)
class Limits:
    max_iterations: int = 6
    tool_timeout: float = 30.0
    turn_timeout: float = 120.0
    model_timeout: float = 60.0  # one model call; shortened to what is left of the turn


@dataclass
class TurnInput:
    messages: list[ChatMessage]  # system prompt, remembered history and the new user message
    query: str  # the new user message
    tools: list[AgentTool]
    client: Any  # app.runtime.providers.ChatClient
    limits: Limits = field(default_factory=Limits)
    temperature: float | None = None
    max_tokens: int | None = None
    local: bool = False
    stream: bool = True
    # Knowledge the conversation already has (attachments): citable like tool passages, numbered first.
    passages: list[Passage] = field(default_factory=list)
    on_model_call: Callable[[ChatResult], None] = lambda result: None
    # Tokens the prompt may hold (the window less room for the answer); None: no limit is known.
    prompt_budget: int | None = None


@dataclass
class TurnResult:
    content: str
    citations: list[dict[str, Any]]
    tool_calls: list[dict[str, Any]]
    iterations: int
    no_answer: bool
    model: str | None = None
    thinking: str = ""
    passages: list[Passage] = field(default_factory=list)  # all the turn saw, numbered from 1


class Turn:
    """One run of the loop; see the module docstring. `run()` returns the result or raises MagnetError."""

    def __init__(self, request: TurnInput, emit: Emit):
        self.request, self.emit = request, emit
        self.deadline = time.monotonic() + request.limits.turn_timeout
        self.passages: list[Passage] = list(request.passages)
        self.records: list[dict[str, Any]] = []  # the tool calls, as the message stores them
        self.results: dict[str, str] = {}  # call signature -> its result text, to spot repeats
        self.thinking: list[str] = []
        self.answered: list[str] = []  # answer text streamed so far, in every round
        self.round_answered = False
        self.model: str | None = None
        self.by_name = {t.spec.name: t for t in request.tools}

    def run(self) -> TurnResult:
        if self.request.local:
            return self._run_local()
        messages = list(self.request.messages)
        offer_tools = bool(self.request.tools)
        for iteration in range(1, self.request.limits.max_iterations + 1):
            last_round = iteration == self.request.limits.max_iterations
            tools = [t.spec for t in self.request.tools] if offer_tools and not last_round else None
            if self.request.prompt_budget is not None:  # tool results grow the prompt every round
                messages = trim_tool_results(messages, self.request.prompt_budget, tools or ())
            result = self._call_model(messages, tools)
            calls = result.tool_calls if tools else []  # calls to tools not offered are ignored
            if not calls:
                return self._finish(result.text, iteration)
            messages.append(ChatMessage(role="assistant", content=result.text or None, tool_calls=calls))
            repeated = False
            for call in calls:
                content, was_repeat = self._run_call(call)
                repeated = repeated or was_repeat
                messages.append(ChatMessage(role="tool", content=content, tool_call_id=call.id, name=call.name))
            offer_tools = not repeated  # a model going round in circles must now answer
        raise AssertionError("unreachable: the last round offers no tools, so it answers")

    # -- model calls -----------------------------------------------------------------------------------

    def _remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise UpstreamTimeout(
                f"The agent did not finish its turn within {self.request.limits.turn_timeout:g} s.",
                code="timeout", details={"reason": "turn_timeout",
                                         "turn_timeout_seconds": self.request.limits.turn_timeout})
        return left

    def _call_model(self, messages: list[ChatMessage], tools: list[ToolSpec] | None) -> ChatResult:
        self.round_answered = False
        timeout = min(self.request.limits.model_timeout, self._remaining())
        options = {"tools": tools, "temperature": self.request.temperature, "max_tokens": self.request.max_tokens,
                   "timeout": timeout, "context_passages": [p.text for p in self.passages]}
        try:
            if not self.request.stream:
                result = self.request.client.complete(messages, **options)
            else:
                result = self._stream_model(messages, tools, options)
        except UpstreamTimeout:
            self._remaining()  # the turn's own deadline, when that is what ran out, says so
            raise
        self.model = result.model or self.model
        self.request.on_model_call(result)
        if tools and result.tool_calls and result.text and not self.round_answered:
            self.thinking.append(result.text)
            if not self.request.stream:  # a stream sent it piece by piece
                self.emit({"event": "thinking.chunk", "delta": result.text})
        return result

    def _stream_model(self, messages, tools, options) -> ChatResult:
        held: list[str] = []  # text of a round that may yet turn out to be thinking
        live = not tools  # without tools the text can only be the answer
        calling = False
        for event in self.request.client.stream(messages, **options):
            if isinstance(event, TextDelta):
                if live:
                    self._answer_delta(event.text)
                else:
                    held.append(event.text)
                    if not calling and sum(map(len, held)) >= ANSWER_AFTER_CHARS:
                        live = True  # long text and no tool call: an answer, streamed from here on
                        for piece in held:
                            self._answer_delta(piece)
                        held = []
            elif isinstance(event, ToolCallStarted):
                calling = True
            elif isinstance(event, Done):
                kind = "thinking.chunk" if event.result.tool_calls else "text.chunk"
                for piece in held:
                    if kind == "text.chunk":
                        self._answer_delta(piece)
                    else:
                        self.emit({"event": kind, "delta": piece})
                return event.result
            if time.monotonic() > self.deadline:
                self._remaining()
        raise AssertionError("provider streams end with Done or raise")

    def _answer_delta(self, text: str) -> None:
        """Send answer text; text sent in an earlier round (it proved to precede a tool call) stays part
        of the answer, so a stream's text chunks always add up to the message."""
        if self.answered and not self.round_answered:
            self.answered.append("\n\n")
            self.emit({"event": "text.chunk", "delta": "\n\n"})
        self.round_answered = True
        self.answered.append(text)
        self.emit({"event": "text.chunk", "delta": text})

    def _finish(self, text: str, iterations: int) -> TurnResult:
        content = ("".join(self.answered) if self.request.stream else text).strip()
        if not content:  # said, so that a stream's text chunks still add up to the message
            self.emit({"event": "text.chunk", "delta": NO_ANSWER_TEXT})
        elif not self.request.stream:
            self.emit({"event": "text.chunk", "delta": content})
        return TurnResult(content=content or NO_ANSWER_TEXT, citations=self._citations(content),
                          tool_calls=self.records, iterations=iterations, no_answer=not content, model=self.model,
                          thinking="\n\n".join(self.thinking), passages=self.passages)

    # -- tool calls ------------------------------------------------------------------------------------

    def _run_call(self, call: ToolCall) -> tuple[str, bool]:
        """Run one call the model made; (the result the model reads, whether it repeated a call)."""
        tool = self.by_name.get(call.name)
        record = {"id": call.id, "name": call.name, "tool_id": tool.tool_id if tool else None,
                  "arguments": call.arguments if not call.arguments_error else call.raw_arguments,
                  "status": "error", "output": None, "error": None, "latency_ms": 0.0}
        self.records.append(record)
        self.emit({"event": "tool.started", "id": call.id, "name": call.name, "tool_id": record["tool_id"],
                   "arguments": record["arguments"]})
        signature = f"{call.name}:{json.dumps(call.arguments, sort_keys=True)}"
        repeated = signature in self.results and not call.arguments_error
        if tool is None:
            content = self._refuse(record, "unknown_tool", f"There is no tool named '{call.name}'. "
                                   f"Available: {', '.join(self.by_name) or 'none'}.")
        elif call.arguments_error:
            content = self._refuse(record, "malformed_arguments",
                                   f"The arguments were not a JSON object: {call.raw_arguments[:500]!r}. "
                                   "Call the tool again with a JSON object that matches its parameters.")
        elif repeated:
            record.update(status="repeated", output="(not run again: same call as before)")
            content = ("You already called this tool with these arguments; its result is above. "
                       "Answer the user now with what you have.")
        else:
            content = self._execute(tool, call, record)
            self.results[signature] = content
        self.emit({"event": "tool.completed", "id": call.id, "name": call.name, "tool_id": record["tool_id"],
                   "status": record["status"], "error": record["error"], "latency_ms": record["latency_ms"],
                   "output": record["output"]})
        return content, repeated

    def _refuse(self, record: dict, code: str, message: str) -> str:
        record["error"] = {"code": code, "message": message}
        return f"Error: {message}"

    def _execute(self, tool: AgentTool, call: ToolCall, record: dict) -> str:
        started = time.monotonic()
        timeout = min(self.request.limits.tool_timeout, self._remaining())

        def progress(message: str) -> None:
            self.emit({"event": "tool.progress", "id": call.id, "name": call.name, "message": message})

        try:
            output = run_with_timeout(lambda: tool.run(call.arguments, progress), timeout, name="agent-tool")
        except Overran:
            record.update(status="timeout", error={"code": "timeout", "message": f"No result within {timeout:g} s."})
            content = f"Error: the tool did not answer within {timeout:g} s."
        except MagnetError as exc:
            record["error"] = {"code": exc.code, "message": exc.message}
            content = f"Error ({exc.code}): {exc.message}"
        except Exception as exc:  # a bug in a tool must not end the conversation; the model hears of it
            record["error"] = {"code": "tool_failed", "message": type(exc).__name__}
            content = "Error: the tool failed unexpectedly."
        else:
            first = len(self.passages) + 1
            self.passages.extend(output.passages)
            content = _render_output(output, first)
            record.update(status="ok", output=_stored(output), error=None)
        record["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
        return content

    # -- the built-in local model ----------------------------------------------------------------------

    def _run_local(self) -> TurnResult:
        knowledge = next((t for t in self.request.tools if t.kind == "rag"), None) or next(
            (t for t in self.request.tools if t.kind == "retrieval"), None)
        query = local_search_query(self.request.messages, self.request.query)
        if knowledge is not None:
            call = ToolCall(id="call_local_1", name=knowledge.spec.name, arguments={"query": query},
                            raw_arguments=json.dumps({"query": query}))
            self._run_call(call)
        if not self.passages:
            return self._finish("", 1)
        # The quoting model reads the last user message: give it the question as it was searched.
        messages = [*self.request.messages[:-1], ChatMessage(role="user", content=query)]
        result = self._call_model(messages, None)
        return self._finish(result.text, 1)

    def _citations(self, text: str) -> list[dict[str, Any]]:
        """Each [n] in the answer that names a passage of this turn, once, in order of first use."""
        seen: set[int] = set()
        citations = []
        for match in CITATION.finditer(text):
            n = int(match.group(1))
            if 1 <= n <= len(self.passages) and n not in seen:
                seen.add(n)
                p = self.passages[n - 1]
                citations.append({"index": n, "source": p.source, "title": p.title, "document_id": p.document_id,
                                  "chunk_id": p.chunk_id, "section": p.section, "page": p.page,
                                  "text": p.text[:500]})
        return citations


def local_search_query(messages: list[ChatMessage], query: str) -> str:
    """What the built-in local model searches for. It cannot read the conversation the way an LLM does,
    so a short follow-up ("and deleted ones?", "how long does it take?") is read with the question
    asked before it, as a person would read it; a question that stands on its own is searched as it is."""
    earlier = [m.content for m in messages[:-1] if m.role == "user" and m.content]
    if not earlier or len(set(content_terms(query))) > FOLLOW_UP_MAX_TERMS or not FOLLOW_UP.search(query):
        return query
    return f"{earlier[-1]} {query}"


def _render_output(output: ToolOutput, first_number: int) -> str:
    """The tool's text and its passages, numbered from `first_number`; markers [k] in the text (a RAG
    tool's answer cites its own passages from 1) are shifted to the same numbering."""
    text, count = output.text, len(output.passages)
    if count and first_number > 1:
        text = CITATION.sub(lambda m: f"[{int(m.group(1)) + first_number - 1}]"
                            if 1 <= int(m.group(1)) <= count else m.group(0), text)
    parts = [text[:MAX_TOOL_CONTENT_CHARS]] if text else []
    for n, passage in enumerate(output.passages, start=first_number):
        label = f" ({passage.source})" if passage.source else ""
        parts.append(f"[{n}]{label}\n{passage.text[:MAX_PASSAGE_CHARS]}")
    return "\n\n".join(parts)[:MAX_TOOL_CONTENT_CHARS] or "(no result)"


def _stored(output: ToolOutput) -> dict[str, Any]:
    return {**output.data, "text": output.text[:MAX_STORED_OUTPUT_CHARS], "passages": len(output.passages)}


def run_turn(request: TurnInput, emit: Emit) -> TurnResult:
    return Turn(request, emit).run()


__all__ = ["AgentTool", "Limits", "Passage", "ToolOutput", "TurnInput", "TurnResult", "run_turn",
           "CITE_INSTRUCTION"]
