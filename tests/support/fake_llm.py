"""A scriptable fake LLM server speaking the real wire protocols, for tests that go through the SDKs.

    with FakeLLM() as llm:
        llm.script(Status(429, headers={"Retry-After": "1"}), Reply("Paris.", prompt_tokens=12))
        client = OpenAI(base_url=llm.base_url, api_key="sk-test")   # Anthropic: base_url=llm.root_url
        ...
        assert len(llm.requests) == 2 and llm.requests[0].headers["authorization"] == "Bearer sk-test"

Routes: `POST /v1/chat/completions` (OpenAI: JSON, or SSE chunks ending `data: [DONE]`, usage in a
final chunk when `stream_options.include_usage`), `POST /v1/messages` (Anthropic: JSON, or its SSE
event types), `GET /v1/models`. Each POST takes the next scripted behaviour from one queue shared by
both routes (`default` when the queue is empty) and renders it in that route's shape, streamed when
the request asked for `stream: true`. Every request is recorded (method, path, lower-cased headers,
JSON body, arrival time) before it is answered.

Behaviours: `Reply` (text), `ToolCallReply` (a function call; a str `arguments` is sent as-is, so it
can be malformed JSON), `Status` (an HTTP error with the provider's error body and optional headers,
e.g. 429 + Retry-After), `Sleep` (wait, then answer: outlasts a client timeout), `BrokenStream` (the
stream, or the JSON body, stops mid-event and the connection closes), `Echo` (replies with the JSON of
the request body as its text), `Raw` (any status and body, as-is), `GatedStream` (streams some words,
then waits for the test to open a gate).
"""
from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

__all__ = ["BrokenStream", "Echo", "FakeLLM", "GatedStream", "Raw", "Recorded", "Reply", "Sleep", "Status",
           "ToolCallReply", "fake_llm"]


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float  # time.monotonic() on arrival, to measure retry delays


@dataclass(frozen=True)
class Reply:
    """A plain answer. completion_tokens defaults to the number of words of the text."""

    text: str = "ok"
    prompt_tokens: int = 10
    completion_tokens: int | None = None
    cached_tokens: int = 0
    include_usage: bool = True  # False: no usage anywhere, as some OpenAI-compatible servers do
    finish_reason: str = "stop"


@dataclass(frozen=True)
class ToolCallReply:
    name: str
    arguments: dict | str = field(default_factory=dict)
    call_id: str = "call_1"
    text: str = ""
    prompt_tokens: int = 10
    completion_tokens: int = 5
    cached_tokens: int = 0
    include_usage: bool = True


@dataclass(frozen=True)
class Status:
    status: int = 500
    message: str = "fake upstream failure"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Sleep:
    seconds: float
    then: Any = field(default_factory=lambda: Reply("late"))


@dataclass(frozen=True)
class BrokenStream:
    text: str = "This answer will be cut off in the middle"


@dataclass(frozen=True)
class Echo:
    pass


@dataclass(frozen=True)
class GatedStream:
    """A streamed reply that stops after its first `after_words` words until `gate` is set: a test can
    see what a client receives while the provider is still mid-answer."""

    text: str
    gate: threading.Event
    after_words: int = 5


@dataclass(frozen=True)
class Raw:
    """Any status and body, sent as-is (a garbage 200, an HTML error page from a proxy...)."""

    status: int = 200
    body: str = "<html>not json</html>"
    content_type: str = "application/json"


class FakeLLM:
    """The server, on 127.0.0.1 and an ephemeral port, in a background thread; see the module docstring."""

    def __init__(self, models: tuple[str, ...] = ("fake-model",), default: Any = None):
        self.models = models
        self.default = default or Reply()
        self._queue: deque = deque()
        self._requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeLLM:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        # A short poll interval: shutdown() waits up to one interval, and every test stops a server.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-llm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes Sleep behaviours so shutdown does not wait for them
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def root_url(self) -> str:
        """http://127.0.0.1:<port>: the Anthropic SDK's base_url (it adds /v1/messages itself)."""
        assert self._server is not None, "FakeLLM is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def base_url(self) -> str:
        """.../v1: the OpenAI SDK's base_url (it adds /chat/completions)."""
        return self.root_url + "/v1"

    def script(self, *behaviours: Any) -> FakeLLM:
        """Queue behaviours; each POST consumes one, in order."""
        with self._lock:
            self._queue.extend(behaviours)
        return self

    @property
    def requests(self) -> list[Recorded]:
        """Every request so far (a copy), oldest first; /v1/models calls included."""
        with self._lock:
            return list(self._requests)

    @property
    def posts(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST"]

    def _record(self, request: Recorded) -> Any:
        with self._lock:
            self._requests.append(request)
            if request.method != "POST":
                return None
            return self._queue.popleft() if self._queue else self.default


@pytest.fixture
def fake_llm():
    """A started FakeLLM, stopped after the test (import this name into a test module to use it)."""
    with FakeLLM() as llm:
        yield llm


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeLLM

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        pass  # keep pytest output clean

    def do_GET(self) -> None:
        self.fake._record(self._recorded(None))
        if self.path.rstrip("/") == "/v1/models":
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake-llm"} for m in self.fake.models]
            return self._json(200, {"object": "list", "data": data})
        return self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = raw.decode(errors="replace")
        api = {"/v1/chat/completions": "openai", "/v1/messages": "anthropic"}.get(self.path.split("?")[0])
        if api is None:
            self.fake._record(self._recorded(body))
            return self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
        behaviour = self.fake._record(self._recorded(body))
        # A client that gave up (its timeout) has closed the socket: nothing is left to answer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._perform(behaviour, api, body if isinstance(body, dict) else {})

    def _recorded(self, body: Any) -> Recorded:
        headers = {k.lower(): v for k, v in self.headers.items()}
        return Recorded(self.command, self.path, headers, body, time.monotonic())

    def _perform(self, behaviour: Any, api: str, body: dict) -> None:
        stream = bool(body.get("stream"))
        if isinstance(behaviour, Sleep):
            self.fake._stopping.wait(behaviour.seconds)
            return self._perform(behaviour.then, api, body)
        if isinstance(behaviour, Status):
            return self._json(behaviour.status, _error_body(api, behaviour), behaviour.headers)
        if isinstance(behaviour, Raw):
            return self._send(behaviour.status, behaviour.body.encode(), behaviour.content_type)
        if isinstance(behaviour, Echo):
            behaviour = Reply(json.dumps(body, sort_keys=True))
        if isinstance(behaviour, BrokenStream):
            return self._broken(api, body, behaviour.text, stream)
        if isinstance(behaviour, GatedStream):
            events = (_openai_events if api == "openai" else _anthropic_events)(Reply(behaviour.text), body)
            cut = behaviour.after_words + (1 if api == "openai" else 3)  # the opening events, then words
            self._sse_start()
            for part in (events[:cut], events[cut:]):
                self.wfile.write("".join(part).encode())
                self.wfile.flush()
                behaviour.gate.wait(30)
            return None
        render = {"openai": (_openai_json, _openai_events), "anthropic": (_anthropic_json, _anthropic_events)}
        as_json, as_events = render[api]
        if not stream:
            return self._json(200, as_json(behaviour, body))
        self._sse(as_events(behaviour, body))

    # -- wire helpers ------------------------------------------------------------------------------------
    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _send(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _sse_start(self) -> None:
        # No Content-Length: the body ends when the connection closes, as real SSE endpoints behave.
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _sse(self, events: list[str]) -> None:
        self._sse_start()
        for event in events:
            self.wfile.write(event.encode())
            self.wfile.flush()

    def _broken(self, api: str, body: dict, text: str, stream: bool) -> None:
        """Start a real answer, then stop in the middle of an event (or of the JSON) and hang up."""
        if stream:
            events = (_openai_events if api == "openai" else _anthropic_events)(Reply(text), body)
            self._sse_start()
            self.wfile.write(("".join(events[:4]) + events[4][: len(events[4]) // 2]).encode())
        else:  # the headers promise the whole body; half of it comes
            data = json.dumps((_openai_json if api == "openai" else _anthropic_json)(Reply(text), body)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
        self.close_connection = True
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_WR)  # the client sees EOF now, mid-event


# -- rendering: one behaviour in each provider's shape ------------------------------------------------------


def _words(text: str) -> list[str]:
    """Stream pieces: words with their trailing spaces, so the pieces join back to the exact text."""
    return re.findall(r"\S+\s*|\s+", text) or [""]


def _tokens(b: Any) -> tuple[int, int, int]:
    completion = b.completion_tokens if b.completion_tokens is not None else len(b.text.split())
    return b.prompt_tokens, completion, b.cached_tokens


def _raw_args(b: ToolCallReply) -> str:
    return b.arguments if isinstance(b.arguments, str) else json.dumps(b.arguments)


def _error_body(api: str, b: Status) -> dict:
    kind = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
            429: "rate_limit_error"}.get(b.status, "api_error")
    if api == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": b.message}}
    return {"error": {"message": b.message, "type": kind, "param": None, "code": None}}


def _openai_usage(b: Any) -> dict:
    prompt, completion, cached = _tokens(b)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached}}


def _openai_json(b: Any, body: dict) -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": b.text or None}
    finish = getattr(b, "finish_reason", "stop")
    if isinstance(b, ToolCallReply):
        message["tool_calls"] = [{"id": b.call_id, "type": "function",
                                  "function": {"name": b.name, "arguments": _raw_args(b)}}]
        finish = "tool_calls"
    out = {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": body.get("model", "?"),
           "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}]}
    if b.include_usage:
        out["usage"] = _openai_usage(b)
    return out


def _openai_events(b: Any, body: dict) -> list[str]:
    want_usage = b.include_usage and (body.get("stream_options") or {}).get("include_usage")

    def chunk(delta: dict, finish: str | None = None, choices: bool = True) -> str:
        data: dict[str, Any] = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
                                "model": body.get("model", "?"),
                                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else []}
        if want_usage:
            data["usage"] = None if choices else _openai_usage(b)
        return f"data: {json.dumps(data)}\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": piece}) for piece in _words(b.text) if b.text]
    finish = getattr(b, "finish_reason", "stop")
    if isinstance(b, ToolCallReply):
        raw = _raw_args(b)
        events.append(chunk({"tool_calls": [{"index": 0, "id": b.call_id, "type": "function",
                                             "function": {"name": b.name, "arguments": ""}}]}))
        cut = max(len(raw) // 2, 1)
        events += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
                   for part in (raw[:cut], raw[cut:]) if part]
        finish = "tool_calls"
    events.append(chunk({}, finish))
    if want_usage:
        events.append(chunk({}, choices=False))
    return [*events, "data: [DONE]\n\n"]


def _anthropic_usage(b: Any) -> dict:
    prompt, completion, cached = _tokens(b)
    # Anthropic's input_tokens excludes cache reads, which it reports separately.
    return {"input_tokens": prompt - cached, "output_tokens": completion,
            "cache_read_input_tokens": cached, "cache_creation_input_tokens": 0}


def _anthropic_json(b: Any, body: dict) -> dict:
    content: list[dict] = [{"type": "text", "text": b.text}] if b.text else []
    stop = {"stop": "end_turn", "length": "max_tokens"}.get(getattr(b, "finish_reason", "stop"), "end_turn")
    if isinstance(b, ToolCallReply):
        # A str is sent as-is: not an object, so a client must flag it as malformed arguments.
        content.append({"type": "tool_use", "id": b.call_id, "name": b.name, "input": b.arguments})
        stop = "tool_use"
    return {"id": "msg_fake", "type": "message", "role": "assistant", "model": body.get("model", "?"),
            "content": content, "stop_reason": stop, "stop_sequence": None, "usage": _anthropic_usage(b)}


def _anthropic_events(b: Any, body: dict) -> list[str]:
    def event(kind: str, **data: Any) -> str:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n"

    full = _anthropic_json(b, body)
    start = {**full, "content": [], "stop_reason": None, "usage": {**full["usage"], "output_tokens": 1}}
    events = [event("message_start", message=start), event("ping")]
    index = 0
    if b.text:
        events.append(event("content_block_start", index=0, content_block={"type": "text", "text": ""}))
        events += [event("content_block_delta", index=0, delta={"type": "text_delta", "text": piece})
                   for piece in _words(b.text)]
        events.append(event("content_block_stop", index=0))
        index = 1
    if isinstance(b, ToolCallReply):
        raw = _raw_args(b)
        events.append(event("content_block_start", index=index,
                            content_block={"type": "tool_use", "id": b.call_id, "name": b.name, "input": {}}))
        cut = max(len(raw) // 2, 1)
        events += [event("content_block_delta", index=index, delta={"type": "input_json_delta", "partial_json": p})
                   for p in (raw[:cut], raw[cut:]) if p]
        events.append(event("content_block_stop", index=index))
    events.append(event("message_delta", delta={"stop_reason": full["stop_reason"], "stop_sequence": None},
                        usage={"output_tokens": full["usage"]["output_tokens"]}))
    return [*events, event("message_stop")]
