"""Chat clients for every provider a configured model may name, behind one `ChatClient` interface.

`client_for(model)`: OpenAI and OpenAI-compatible servers through the `openai` SDK, Anthropic through
the `anthropic` SDK, provider "local" the built-in extractive answerer. For the remote clients:
- Retries are ours (the SDKs get max_retries=0): up to `RetryPolicy.attempts` tries on HTTP 429, 5xx and
  connection failures, exponential backoff with jitter, a provider's Retry-After honoured up to a cap.
  Timeouts are not retried: the caller's time is spent. A stream is retried only while it opens.
- Failures become `UpstreamTimeout` (504, "timeout") or `UpstreamError` (502, "agent_error") naming the
  provider, model and HTTP status, raised `from None` with redacted text only: SDK exceptions hold
  request headers and bodies that may echo the API key, and chained tracebacks end up in logs.
- Usage comes from the provider, else is counted with the cl100k tokenizer (`usage_estimated=True`).
  Finish reasons use OpenAI's vocabulary. `timeout` bounds the whole call, retries and their waits
  included: each attempt gets the time left, and a retry that could not start in time is not made.
"""
from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import anthropic
import openai

from app import crypto
from app.errors import MagnetError, UpstreamError, UpstreamTimeout, ValidationFailed
from app.models import LlmModel
from app.runtime import llm_types as lt
from app.runtime.extractive import LocalExtractiveClient
from app.runtime.llm_types import ChatMessage, ChatResult, StreamAssembly, StreamEvent, TextDelta, ToolCall
from app.runtime.outbound_slots import outbound_slot

__all__ = ["AnthropicClient", "ChatClient", "OpenAIClient", "RetryPolicy", "client_for"]
log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0
MIN_ATTEMPT_SECONDS = 1.0  # a retry with less time than this left could not get an answer
MAX_CACHED_CLIENTS = 64
_CLIENTS: OrderedDict[tuple, ChatClient] = OrderedDict()
_CLIENTS_LOCK = threading.Lock()
ANTHROPIC_DEFAULT_MAX_TOKENS = 1024  # Anthropic requires max_tokens; OpenAI lets the server decide
ANTHROPIC_URL = "https://api.anthropic.com"
_ANTHROPIC_STOP = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                   "tool_use": "tool_calls", "refusal": "content_filter"}
_SDK_ERRORS = (openai.OpenAIError, anthropic.AnthropicError)
_TIMEOUTS = (openai.APITimeoutError, anthropic.APITimeoutError)
_CONNECTION = (openai.APIConnectionError, anthropic.APIConnectionError)
_STATUS = (openai.APIStatusError, anthropic.APIStatusError)
# What a malformed answer raises while we read it (bad JSON in an SSE event, a missing field).
_MALFORMED = (*_SDK_ERRORS, ValueError, AttributeError, TypeError, KeyError, IndexError)


class ChatClient(Protocol):
    """What the agent runtime calls. `context_passages` feeds the local extractive model (it quotes
    them); remote models ignore it because their prompt already contains the context."""

    def complete(self, messages: Sequence[ChatMessage], *, tools: Sequence[lt.ToolSpec] | None = None,
                 temperature: float | None = None, max_tokens: int | None = None,
                 timeout: float | None = None, context_passages: Sequence[str] | None = None) -> ChatResult:
        ...

    def stream(self, messages: Sequence[ChatMessage], *, tools: Sequence[lt.ToolSpec] | None = None,
               temperature: float | None = None, max_tokens: int | None = None,
               timeout: float | None = None, context_passages: Sequence[str] | None = None,
               ) -> Iterator[StreamEvent]:
        ...


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a failed call (see the module docstring)."""

    attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    # A provider asking for a longer pause is waited for only this long: a request is waiting on us.
    max_retry_after: float = 20.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based). Jitter spreads out the clients
        that failed together, so they do not all come back at the same instant."""
        if retry_after is not None:
            wait = min(max(retry_after, 0.0), self.max_retry_after)
            return wait + random.uniform(0, min(wait, 1.0) * 0.1)
        backoff = min(self.base_delay * 2 ** (attempt - 1), self.max_delay)
        return backoff + random.uniform(0, backoff / 2)


def client_for(model: LlmModel, *, timeout: float | None = None, retry: RetryPolicy | None = None) -> ChatClient:
    """The chat client for a configured model. Decrypts its API key, so it needs an app context.

    Raises ValidationFailed (422) for a model that is not a chat model or cannot be called as set up.
    """
    if model.kind and model.kind != "chat":
        raise ValidationFailed(f"Model '{model.name}' is a {model.kind} model, not a chat model.",
                               code="not_a_chat_model", details={"model": model.id, "kind": model.kind})
    if model.provider == "local":
        return LocalExtractiveClient(model_name=model.model_id or "extractive")
    # Building an SDK client costs tens of milliseconds (its HTTP client, TLS context): reuse one per
    # configuration. Any change to the model's connection settings or key makes a new key, so a new client.
    key = (model.id, model.provider, model.model_id, model.endpoint, model.api_key_encrypted, timeout, retry)
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key) if model.id else None
        if client is not None:
            _CLIENTS.move_to_end(key)
            return client
    client = _build_client(model, timeout=timeout, retry=retry)
    if model.id:
        with _CLIENTS_LOCK:
            _CLIENTS[key] = client
            while len(_CLIENTS) > MAX_CACHED_CLIENTS:
                _CLIENTS.popitem(last=False)
    return client


def _build_client(model: LlmModel, *, timeout: float | None, retry: RetryPolicy | None) -> ChatClient:
    api_key = crypto.decrypt(model.api_key_encrypted) if model.api_key_encrypted else None
    options = {"model_id": model.model_id, "base_url": model.endpoint or None, "api_key": api_key,
               "timeout": timeout or DEFAULT_TIMEOUT, "retry": retry or RetryPolicy()}
    if model.provider in ("openai", "openai_compatible"):
        if model.provider == "openai_compatible" and not model.endpoint:
            raise ValidationFailed(f"Model '{model.name}' is openai_compatible but has no endpoint.",
                                   details={"model": model.id})
        return OpenAIClient(provider=model.provider, **options)
    if model.provider == "anthropic":
        return AnthropicClient(**options)
    raise ValidationFailed(f"Model '{model.name}' has an unknown provider '{model.provider}'.",
                           details={"model": model.id, "provider": model.provider})


@dataclass
class _Failure:
    error: MagnetError
    retryable: bool
    retry_after: float | None = None


class _RemoteClient:
    """Retries, error mapping, usage and timing shared by the SDK-backed clients; subclasses supply
    `_create` (one SDK call), `_parse` (a whole response) and `_read` (a stream of SDK events)."""

    label, provider = "provider", "unknown"

    def __init__(self, *, model_id: str, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, retry: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.model_id = model_id
        self.base_url = base_url
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._secret = api_key
        self._sleep = sleep

    def complete(self, messages: Sequence[ChatMessage], *, tools: Sequence[lt.ToolSpec] | None = None,
                 temperature: float | None = None, max_tokens: int | None = None,
                 timeout: float | None = None, context_passages: Sequence[str] | None = None) -> ChatResult:
        """One chat completion. Raises UpstreamTimeout or UpstreamError (see the module docstring)."""
        started, timeout = time.monotonic(), timeout or self.timeout
        with outbound_slot(f"the call to {self.label}"):
            response = self._retrying(
                lambda left: self._create(messages, tools, temperature, max_tokens, left, stream=False), timeout)
        try:
            text, calls, usage, finish, model = self._parse(response)
        except _MALFORMED as exc:
            raise self._unreadable(exc) from None
        return self._result(text, calls, usage, finish, model, messages, tools, started)

    def stream(self, messages: Sequence[ChatMessage], *, tools: Sequence[lt.ToolSpec] | None = None,
               temperature: float | None = None, max_tokens: int | None = None,
               timeout: float | None = None, context_passages: Sequence[str] | None = None,
               ) -> Iterator[StreamEvent]:
        """TextDelta events as the text arrives (ToolCallStarted when a tool call's first fragment does),
        then one ToolCallEvent per tool call, then Done. The request is made on the first `next()`; a
        stream cut off early raises UpstreamError."""
        started, timeout = time.monotonic(), timeout or self.timeout
        state = StreamAssembly()
        with outbound_slot(f"the call to {self.label}"):  # held while the answer streams in
            events = self._retrying(
                lambda left: self._create(messages, tools, temperature, max_tokens, left, stream=True), timeout)
            try:
                yield from self._read(events, state)
            except _MALFORMED as exc:
                if isinstance(exc, _TIMEOUTS):
                    raise self._translate(exc, timeout, attempts=1).error from None
                # A dropped connection, bad JSON in an event, an SSE "error" event (on an HTTP 200 response).
                raise self._unreadable(exc, stream=True) from None
            finally:
                events.close()
        if not state.finished:
            raise self._unreadable(None, stream=True)  # closed cleanly, but before the final event
        calls = state.tool_calls()
        for call in calls:
            yield lt.ToolCallEvent(call)
        yield lt.Done(self._result("".join(state.text), calls, state.usage, state.finish_reason,
                                state.model, messages, tools, started))

    def _create(self, messages, tools, temperature, max_tokens, timeout, *, stream: bool) -> Any:
        raise NotImplementedError

    def _parse(self, response: Any) -> tuple[str, list[ToolCall], lt.Usage | None, str | None, str | None]:
        raise NotImplementedError

    def _read(self, events: Any, state: StreamAssembly) -> Iterator[TextDelta | lt.ToolCallStarted]:
        raise NotImplementedError

    def _result(self, text, calls, usage, finish, model, messages, tools, started) -> ChatResult:
        estimated = usage is None
        if estimated:
            usage = lt.Usage(lt.estimate_prompt_tokens(messages, tools),
                             lt.estimate_completion_tokens(text, calls))
        latency_ms = round((time.monotonic() - started) * 1000, 1)
        return ChatResult(text=text, tool_calls=calls, usage=usage, finish_reason=finish,
                          model=model or self.model_id, latency_ms=latency_ms, usage_estimated=estimated)

    def _retrying(self, call: Callable[[float], Any], timeout: float) -> Any:
        """`call(seconds_left)` until it succeeds, fails for good, or `timeout` seconds are spent."""
        deadline = time.monotonic() + timeout
        for attempt in range(1, self.retry.attempts + 1):
            try:
                return call(deadline - time.monotonic())  # a retry starts only with MIN_ATTEMPT_SECONDS left
            except (*_SDK_ERRORS, ValueError) as exc:  # ValueError: a 200 whose body is not JSON
                failure = self._translate(exc, timeout, attempts=attempt)
                if not failure.retryable or attempt >= self.retry.attempts:
                    raise failure.error from None
                delay = self.retry.delay(attempt, failure.retry_after)
                if time.monotonic() + delay + MIN_ATTEMPT_SECONDS > deadline:
                    raise failure.error from None  # no time left for another try: say what failed
                log.warning("%s (model %s) failed, attempt %d of %d; retrying in %.2f s: %s", self.label,
                            self.model_id, attempt, self.retry.attempts, delay, failure.error.message)
                self._sleep(delay)
        raise AssertionError("unreachable: the last attempt raises")

    def _translate(self, exc: BaseException, timeout: float, *, attempts: int) -> _Failure:
        tries = f" after {attempts} attempt{'s' if attempts != 1 else ''}"
        if isinstance(exc, _TIMEOUTS):
            return _Failure(UpstreamTimeout(
                f"{self.label} did not answer within {timeout:g} s (model '{self.model_id}').",
                code="timeout", details=self._details(reason="timeout", timeout_seconds=timeout)), False)
        if isinstance(exc, _STATUS):
            status = exc.status_code
            details = self._details(reason="http_status", status=status, upstream_message=self._upstream(exc))
            error = UpstreamError(f"{self.label} answered HTTP {status} for model '{self.model_id}'{tries}.",
                                  code="agent_error", details=details)
            return _Failure(error, status == 429 or status >= 500, _retry_after(exc.response.headers))
        if isinstance(exc, _CONNECTION):
            cause = type(exc.__cause__).__name__ if exc.__cause__ else type(exc).__name__
            return _Failure(UpstreamError(
                f"The connection to {self.label} failed for model '{self.model_id}'{tries} ({cause}).",
                code="agent_error", details=self._details(reason="connection", error=cause)), True)
        return _Failure(self._unreadable(exc), False)

    def _unreadable(self, exc: BaseException | None, *, stream: bool = False) -> UpstreamError:
        """A response we could not use: malformed, or a stream that broke off (exc None: it ended early)."""
        what = "stream broke off before the answer was complete" if stream else "response could not be read"
        return UpstreamError(
            f"{self.label}'s {what} (model '{self.model_id}'{f', {type(exc).__name__}' if exc else ''}).",
            code="agent_error", details=self._details(reason="stream_cut" if stream else "malformed_response",
                                                      upstream_message=self._redact(str(exc or ""))[:300]))

    def _details(self, **extra: Any) -> dict[str, Any]:
        return {"provider": self.provider, "model": self.model_id, "endpoint": _safe_url(self.base_url), **extra}

    def _upstream(self, exc: Any) -> str:
        """The provider's own error message, short and redacted: it helps, and some providers echo keys."""
        body = exc.body if isinstance(getattr(exc, "body", None), dict) else {}
        error = body.get("error") if isinstance(body.get("error"), dict) else body
        return self._redact(str(error.get("message") or getattr(exc, "message", "") or ""))[:300]

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "[redacted]") if self._secret else text


def _retry_after(headers: Any) -> float | None:
    """Seconds a provider asked us to wait: `retry-after-ms` (OpenAI), `retry-after` seconds or date."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = str(headers.get(name) or "").strip() if headers is not None else ""
        with contextlib.suppress(TypeError, ValueError):  # an unparsable value is no instruction
            if value.replace(".", "", 1).isdigit():
                return float(value) / scale
            if value and scale == 1.0:
                return max(email.utils.parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    return None


def _safe_url(url: str | None) -> str | None:
    """The endpoint without credentials, query or fragment: enough to say where, nothing secret."""
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}" if url else None


class OpenAIClient(_RemoteClient):
    """OpenAI's chat completions API, and any server that speaks it (vLLM, Ollama, LM Studio...)."""

    def __init__(self, *, provider: str = "openai", **options: Any):
        super().__init__(**options)
        self.provider = provider
        self.label = "OpenAI" if provider == "openai" else "OpenAI-compatible server"
        kwargs: dict[str, Any] = {"base_url": self.base_url} if self.base_url else {}
        # A keyless local server still needs some key: the SDK refuses to build a client without one.
        self._sdk = openai.OpenAI(api_key=self._secret or "none", timeout=self.timeout, max_retries=0, **kwargs)

    def _create(self, messages, tools, temperature, max_tokens, timeout, *, stream: bool) -> Any:
        kwargs: dict[str, Any] = {"model": self.model_id, "messages": [lt.openai_message(m) for m in messages],
                                  "timeout": timeout}
        if tools:
            kwargs["tools"] = [{"type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": t.parameters}} for t in tools]
        if temperature is not None:
            kwargs["temperature"] = temperature
        if max_tokens is not None:
            # OpenAI's reasoning models refuse max_tokens; most compatible servers know only max_tokens.
            kwargs["max_completion_tokens" if self.provider == "openai" else "max_tokens"] = max_tokens
        if stream:
            kwargs.update(stream=True, stream_options={"include_usage": True})
        return self._sdk.chat.completions.create(**kwargs)

    def _parse(self, response: Any):
        choice = response.choices[0]
        calls = [ToolCall.from_raw(c.id, c.function.name, c.function.arguments)
                 for c in choice.message.tool_calls or [] if getattr(c, "function", None)]
        return choice.message.content or "", calls, _openai_usage(response.usage), choice.finish_reason, \
            response.model

    def _read(self, events: Any, state: StreamAssembly) -> Iterator[TextDelta | lt.ToolCallStarted]:
        for chunk in events:
            state.model = chunk.model or state.model
            if getattr(chunk, "usage", None):
                state.usage = _openai_usage(chunk.usage)
            for choice in chunk.choices or []:
                if choice.index != 0:
                    continue  # n > 1 is never requested; ignore stray choices rather than mix them in
                if choice.delta and choice.delta.content:
                    state.text.append(choice.delta.content)
                    yield TextDelta(choice.delta.content)
                for tc in (choice.delta.tool_calls if choice.delta else None) or []:
                    fn = tc.function
                    name = fn.name if fn else None
                    if state.call_fragment(tc.index, tc.id, name, fn.arguments if fn else None):
                        yield lt.ToolCallStarted(name or "")
                if choice.finish_reason:
                    state.finish_reason, state.finished = choice.finish_reason, True


def _openai_usage(usage: Any) -> lt.Usage | None:
    if usage is None:
        return None
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) or 0
    return lt.Usage(usage.prompt_tokens or 0, usage.completion_tokens or 0, cached)


class AnthropicClient(_RemoteClient):
    """Anthropic's messages API. The endpoint may be given with or without its trailing /v1."""

    label, provider = "Anthropic", "anthropic"

    def __init__(self, **options: Any):
        super().__init__(**options)
        base = (self.base_url or ANTHROPIC_URL).rstrip("/")
        base = base[:-3] if base.endswith("/v1") else base  # the SDK adds /v1/messages itself
        # An explicit key (even a placeholder) stops the SDK from reading keys from env or profiles.
        self._sdk = anthropic.Anthropic(api_key=self._secret or "none", base_url=base,
                                        timeout=self.timeout, max_retries=0)

    def _create(self, messages, tools, temperature, max_tokens, timeout, *, stream: bool) -> Any:
        system, wire = lt.anthropic_messages(messages)
        kwargs: dict[str, Any] = {"model": self.model_id, "messages": wire, "timeout": timeout,
                                  "max_tokens": max_tokens or ANTHROPIC_DEFAULT_MAX_TOKENS}
        if system:
            kwargs["system"] = system
        if tools:
            kwargs["tools"] = [{"name": t.name, "description": t.description, "input_schema": t.parameters}
                               for t in tools]
        # No temperature: the anthropic 2.x SDK's messages API has no sampling parameters, and sending
        # one through extra_body risks a 400 from the real API. It is accepted here and ignored.
        if stream:
            kwargs["stream"] = True
        return self._sdk.messages.create(**kwargs)

    def _parse(self, response: Any):
        text = "".join(b.text for b in response.content if b.type == "text")
        calls = [ToolCall(id=b.id, name=b.name, arguments=b.input if isinstance(b.input, dict) else {},
                          raw_arguments=json.dumps(b.input), arguments_error=not isinstance(b.input, dict))
                 for b in response.content if b.type == "tool_use"]
        stop = _ANTHROPIC_STOP.get(response.stop_reason, response.stop_reason)
        return text, calls, _anthropic_usage(response.usage), stop, response.model

    def _read(self, events: Any, state: StreamAssembly) -> Iterator[TextDelta | lt.ToolCallStarted]:
        usage: dict[str, int] = {}
        for event in events:
            kind = event.type
            if kind == "message_start":
                state.model = event.message.model
                usage.update(_usage_fields(event.message.usage))
            elif kind == "content_block_start" and event.content_block.type == "tool_use":
                state.call_fragment(event.index, event.content_block.id, event.content_block.name, None)
                yield lt.ToolCallStarted(event.content_block.name)
            elif kind == "content_block_delta" and event.delta.type == "text_delta":
                state.text.append(event.delta.text)
                yield TextDelta(event.delta.text)
            elif kind == "content_block_delta" and event.delta.type == "input_json_delta":
                state.call_fragment(event.index, None, None, event.delta.partial_json)
            elif kind == "message_delta":
                state.finish_reason = _ANTHROPIC_STOP.get(event.delta.stop_reason, event.delta.stop_reason)
                usage.update(_usage_fields(event.usage))  # cumulative counts: the latest wins
            elif kind == "message_stop":
                state.finished = True
        if usage:
            state.usage = _anthropic_usage(usage)


def _usage_fields(usage: Any) -> dict[str, int]:
    names = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    return {n: getattr(usage, n) for n in names if getattr(usage, n, None) is not None}


def _anthropic_usage(usage: Any) -> lt.Usage | None:
    """Anthropic's input_tokens excludes cache reads and writes; Usage.prompt_tokens includes both
    (cached_tokens is "part of prompt_tokens"). Cache writes are priced as ordinary input."""
    if usage is None:
        return None
    fields = usage if isinstance(usage, dict) else _usage_fields(usage)
    cached = fields.get("cache_read_input_tokens", 0)
    prompt = fields.get("input_tokens", 0) + cached + fields.get("cache_creation_input_tokens", 0)
    return lt.Usage(prompt, fields.get("output_tokens", 0), cached)
