"""Provider clients over real HTTP: the openai and anthropic SDKs talk to a local fake server that speaks
their wire protocols (tests/support/fake_llm.py), so retries, streaming and error mapping are exercised
end to end without any external service."""
from __future__ import annotations

import time

import openai
import pytest

from app import crypto
from app.errors import UpstreamError, UpstreamTimeout, ValidationFailed
from app.models import LlmModel
from app.runtime.extractive import LocalExtractiveClient
from app.runtime.llm_types import (
    ChatMessage,
    Done,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    ToolSpec,
    estimate_completion_tokens,
    estimate_prompt_tokens,
)
from app.runtime.providers import AnthropicClient, OpenAIClient, RetryPolicy, client_for
from app.services.usage import Usage, cost_of
from tests.conftest import wait_for
from tests.support.fake_llm import BrokenStream, Echo, FakeLLM, Raw, Reply, Sleep, Status, ToolCallReply

KEY = "sk-test-0123456789abcdef"
FAST = RetryPolicy(base_delay=0.01, max_delay=0.02)  # retries without slowing the suite
MESSAGES = [ChatMessage("system", "Answer briefly."), ChatMessage("user", "What is the capital of France?")]
SEARCH = ToolSpec("search", "Search the knowledge base",
                  {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]})
PROVIDERS = ["openai_compatible", "anthropic"]


@pytest.fixture
def llm():
    with FakeLLM() as server:
        yield server


def make_model(provider: str, server: FakeLLM, *, key: str | None = KEY, **fields) -> LlmModel:
    """An in-memory model (never saved). Both providers get the /v1 URL: Anthropic's client strips it."""
    return LlmModel(
        name=f"test-{provider}", provider=provider, model_id="fake-model", endpoint=server.base_url,
        kind="chat", api_key_encrypted=crypto.encrypt(key) if key else None,
        input_per_1k=fields.pop("input_per_1k", 0.0), output_per_1k=fields.pop("output_per_1k", 0.0), **fields,
    )


def make_client(provider: str, server: FakeLLM, **kwargs):
    return client_for(make_model(provider, server), retry=kwargs.pop("retry", FAST), **kwargs)


# -- happy paths ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_completion_returns_text_usage_and_cost_from_pricing(app, llm, provider):
    llm.script(Reply("Paris.", prompt_tokens=1200, completion_tokens=300, cached_tokens=200))
    model = make_model(provider, llm, input_per_1k=0.5, output_per_1k=1.5, cached_input_per_1k=0.25)

    result = client_for(model, retry=FAST).complete(MESSAGES, temperature=0.2, max_tokens=50)

    assert result.text == "Paris."
    assert result.finish_reason == "stop"
    assert result.tool_calls == [] and result.model == "fake-model" and result.latency_ms > 0
    assert result.usage == Usage(prompt_tokens=1200, completion_tokens=300, cached_tokens=200)
    assert not result.usage_estimated
    # 1000 uncached x 0.5 + 200 cached x 0.25 + 300 completion x 1.5, per 1000 tokens
    assert cost_of(model, result.usage) == pytest.approx(1.0)
    body = llm.posts[0].body
    assert body["model"] == "fake-model"
    assert body.get("temperature") == (0.2 if provider == "openai_compatible" else None)


def test_openai_wire_shape_and_bearer_key(app, llm):
    llm.script(Reply("ok"))
    history = [
        *MESSAGES,
        ChatMessage("assistant", None, tool_calls=[ToolCall("call_9", "search", {"query": "x"}, '{"query": "x"}')]),
        ChatMessage("tool", "Paris is the capital.", tool_call_id="call_9"),
    ]
    make_client("openai_compatible", llm).complete(history, tools=[SEARCH], max_tokens=64)

    request = llm.posts[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.body["max_tokens"] == 64  # compatible servers know max_tokens, not max_completion_tokens
    assert request.body["tools"] == [{"type": "function", "function": {
        "name": "search", "description": "Search the knowledge base", "parameters": SEARCH.parameters}}]
    assert [m["role"] for m in request.body["messages"]] == ["system", "user", "assistant", "tool"]
    assert request.body["messages"][2]["tool_calls"][0]["function"] == {"name": "search",
                                                                         "arguments": '{"query": "x"}'}
    assert request.body["messages"][3]["tool_call_id"] == "call_9"


def test_openai_provider_sends_max_completion_tokens(app, llm):
    llm.script(Reply("ok"))
    client_for(make_model("openai", llm), retry=FAST).complete(MESSAGES, max_tokens=64)
    assert llm.posts[0].body["max_completion_tokens"] == 64 and "max_tokens" not in llm.posts[0].body


def test_anthropic_wire_shape_system_separated_and_key_header(app, llm):
    llm.script(Echo())
    history = [
        *MESSAGES,
        ChatMessage("assistant", "Let me look.", tool_calls=[ToolCall("tu_1", "search", {"query": "x"}, "")]),
        ChatMessage("tool", "Paris is the capital.", tool_call_id="tu_1"),
    ]
    result = make_client("anthropic", llm).complete(history, tools=[SEARCH])

    request = llm.posts[0]
    assert request.path == "/v1/messages"  # the configured .../v1 endpoint was not doubled
    # anthropic 2.x sends the key as a Bearer token (1.x used x-api-key); either way it is our key.
    assert KEY in (request.headers.get("x-api-key"), request.headers.get("authorization", "")[7:])
    assert "anthropic-version" in request.headers
    assert request.body["system"] == "Answer briefly."
    assert request.body["max_tokens"] == 1024  # Anthropic requires one; ours is the default
    assert request.body["tools"] == [{"name": "search", "description": "Search the knowledge base",
                                      "input_schema": SEARCH.parameters}]
    assert request.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "What is the capital of France?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Let me look."},
                                          {"type": "tool_use", "id": "tu_1", "name": "search",
                                           "input": {"query": "x"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1",
                                      "content": "Paris is the capital."}]},
    ]
    assert '"system": "Answer briefly."' in result.text  # Echo: the server saw what we recorded


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stream_deltas_concatenate_to_the_text_and_usage_arrives(app, llm, provider):
    text = "Paris is the capital of France, on the Seine."
    llm.script(Reply(text, prompt_tokens=42, completion_tokens=12, cached_tokens=2))

    events = list(make_client(provider, llm).stream(MESSAGES))

    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 3 and "".join(deltas) == text
    assert isinstance(events[-1], Done)
    result = events[-1].result
    assert result.text == text and result.finish_reason == "stop"
    assert result.usage == Usage(42, 12, 2) and not result.usage_estimated
    if provider == "openai_compatible":
        assert llm.posts[0].body["stream_options"] == {"include_usage": True}


def test_usage_is_counted_with_tiktoken_when_the_server_reports_none(app, llm):
    text = "Paris is the capital of France."
    llm.script(Reply(text, include_usage=False), Reply(text, include_usage=False))
    client = make_client("openai_compatible", llm)
    expected = Usage(estimate_prompt_tokens(MESSAGES, [SEARCH]), estimate_completion_tokens(text))

    completed = client.complete(MESSAGES, tools=[SEARCH])
    streamed = list(client.stream(MESSAGES, tools=[SEARCH]))[-1].result

    for result in (completed, streamed):
        assert result.usage == expected and result.usage_estimated
    assert expected.prompt_tokens > 3 + 2 * 4 and expected.completion_tokens == 7


@pytest.mark.parametrize("provider", PROVIDERS)
def test_tool_calls_are_parsed(app, llm, provider):
    args = {"query": "capital of France", "top_k": 3}
    llm.script(ToolCallReply("search", args, call_id="call_42"), ToolCallReply("search", args, call_id="call_42"))
    client = make_client(provider, llm)

    completed = client.complete(MESSAGES, tools=[SEARCH])
    events = list(client.stream(MESSAGES, tools=[SEARCH]))

    streamed_calls = [e.tool_call for e in events if isinstance(e, ToolCallEvent)]
    for calls, finish in ((completed.tool_calls, completed.finish_reason),
                          (streamed_calls, events[-1].result.finish_reason)):
        assert finish == "tool_calls"
        assert len(calls) == 1
        call = calls[0]
        assert (call.id, call.name, call.arguments, call.arguments_error) == ("call_42", "search", args, False)
    assert events[-1].result.tool_calls == streamed_calls


@pytest.mark.parametrize("provider", PROVIDERS)
def test_malformed_tool_arguments_are_kept_raw_and_flagged(app, llm, provider):
    raw = '{"query": "capital of'
    llm.script(ToolCallReply("search", raw), ToolCallReply("search", raw))
    client = make_client(provider, llm)

    completed = client.complete(MESSAGES, tools=[SEARCH]).tool_calls[0]
    streamed = list(client.stream(MESSAGES, tools=[SEARCH]))[-1].result.tool_calls[0]

    for call in (completed, streamed):
        assert call.arguments == {} and call.arguments_error is True
    assert streamed.raw_arguments == raw
    if provider == "openai_compatible":
        assert completed.raw_arguments == raw


# -- retries and failures -----------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_429_is_retried_after_the_retry_after_delay(app, llm, provider):
    llm.script(Status(429, "slow down", headers={"Retry-After": "1"}), Reply("Paris."))

    result = make_client(provider, llm).complete(MESSAGES)

    assert result.text == "Paris."
    posts = llm.posts
    assert len(posts) == 2
    assert posts[1].at - posts[0].at >= 1.0  # Retry-After won over the 0.01 s backoff


@pytest.mark.parametrize("provider", PROVIDERS)
def test_500_three_times_becomes_an_agent_error(app, llm, provider):
    llm.script(Status(500), Status(503), Status(500), Reply("never reached"))

    with pytest.raises(UpstreamError) as caught:
        make_client(provider, llm).complete(MESSAGES)

    error = caught.value
    assert (error.status, error.code) == (502, "agent_error")
    assert "HTTP 500" in error.message and "after 3 attempts" in error.message
    assert ("Anthropic" if provider == "anthropic" else "OpenAI-compatible") in error.message
    assert error.details["status"] == 500 and error.details["provider"] == provider
    assert len(llm.posts) == 3


@pytest.mark.parametrize("provider", PROVIDERS)
def test_retries_stay_within_the_calls_timeout(app, llm, provider):
    # A 503 that asks for 2 s of patience, under a 2.5 s timeout: a retry could not start in time.
    llm.script(Status(503, "busy", headers={"Retry-After": "2"}))
    started = time.monotonic()

    with pytest.raises(UpstreamError) as caught:
        make_client(provider, llm).complete(MESSAGES, timeout=2.5)

    assert "HTTP 503" in caught.value.message and "after 1 attempt" in caught.value.message
    assert len(llm.posts) == 1 and time.monotonic() - started < 2.0  # it did not sit out the wait

    # A 500 after 1.5 s of a 3 s timeout: the retry gets the 1.5 s left, not 3 s more (4.5 s in all).
    llm.script(Sleep(1.5, then=Status(500)), Sleep(10.0))
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        make_client(provider, llm).complete(MESSAGES, timeout=3.0)
    assert len(llm.posts) == 1 + 2 and time.monotonic() - started < 4.0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_client_errors_are_not_retried_and_never_leak_the_key(app, llm, provider):
    llm.script(Status(401, f"Incorrect API key provided: {KEY}."))

    with pytest.raises(UpstreamError) as caught:
        make_client(provider, llm).complete(MESSAGES)

    error = caught.value
    assert len(llm.posts) == 1
    assert "HTTP 401" in error.message
    assert error.details["upstream_message"] == "Incorrect API key provided: [redacted]."
    assert KEY not in f"{error} {error.message} {error.details!r}"
    assert error.__cause__ is None and error.__suppress_context__  # no SDK exception chained into logs


@pytest.mark.parametrize("provider", PROVIDERS)
def test_timeout_becomes_upstream_timeout_without_retrying(app, llm, provider):
    llm.script(Sleep(3.0))

    with pytest.raises(UpstreamTimeout) as caught:
        make_client(provider, llm).complete(MESSAGES, timeout=0.3)

    assert (caught.value.status, caught.value.code) == (504, "timeout")
    assert caught.value.details["timeout_seconds"] == 0.3
    # The server may record the request after the client gave up on it (a loaded machine): wait for it.
    # Any retry would have been made before complete() raised, so one post now means no retry.
    assert wait_for(lambda: len(llm.posts), lambda n: n >= 1, timeout=10) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_stream_cut_off_mid_event_is_an_agent_error(app, llm, provider):
    llm.script(BrokenStream("This answer will be cut off somewhere in the middle"))
    received = []

    with pytest.raises(UpstreamError) as caught:
        for event in make_client(provider, llm).stream(MESSAGES):
            received.append(event)

    assert caught.value.code == "agent_error" and caught.value.details["reason"] == "stream_cut"
    assert received and all(isinstance(e, TextDelta) for e in received)  # some text, never a Done


def test_a_body_that_is_not_json_is_an_agent_error_not_retried(app, llm):
    llm.script(Raw(200, "<html>proxy error</html>"))
    with pytest.raises(UpstreamError) as caught:
        make_client("openai_compatible", llm).complete(MESSAGES)
    assert caught.value.details["reason"] == "malformed_response" and len(llm.posts) == 1


def test_unreachable_server_is_retried_then_an_agent_error():
    with FakeLLM() as server:
        dead_url = server.base_url  # nothing listens here once the server has stopped
    client = OpenAIClient(model_id="fake-model", base_url=dead_url, api_key=KEY, retry=FAST)
    with pytest.raises(UpstreamError) as caught:
        client.complete(MESSAGES)
    assert caught.value.details["reason"] == "connection" and "after 3 attempts" in caught.value.message


def test_retry_policy_backs_off_exponentially_and_caps_retry_after():
    policy = RetryPolicy(base_delay=1.0, max_delay=3.0, max_retry_after=5.0)
    assert 1.0 <= policy.delay(1, None) <= 1.5
    assert 2.0 <= policy.delay(2, None) <= 3.0
    assert 3.0 <= policy.delay(5, None) <= 4.5  # capped at max_delay, plus jitter
    assert 5.0 <= policy.delay(1, 120.0) <= 5.5
    assert 2.0 <= policy.delay(1, 2.0) <= 2.2


# -- choosing a client ----------------------------------------------------------------------------------


def test_client_for_picks_the_client_for_each_provider(app, llm):
    assert isinstance(make_client("openai", llm), OpenAIClient)
    assert isinstance(make_client("openai_compatible", llm), OpenAIClient)
    assert isinstance(make_client("anthropic", llm), AnthropicClient)
    builtin = app.extensions["sqlalchemy"].session.query(LlmModel).filter_by(model_id="extractive").one()
    assert isinstance(client_for(builtin), LocalExtractiveClient)


def test_client_for_refuses_models_it_cannot_call(app, llm):
    with pytest.raises(ValidationFailed):
        client_for(LlmModel(name="e", provider="local", model_id="all-MiniLM-L6-v2", kind="embedding"))
    with pytest.raises(ValidationFailed):
        client_for(LlmModel(name="c", provider="openai_compatible", model_id="m", kind="chat", endpoint=None))


def test_a_keyless_compatible_server_gets_a_placeholder_key(app, llm):
    llm.script(Reply("ok"))
    client_for(make_model("openai_compatible", llm, key=None), retry=FAST).complete(MESSAGES)
    assert llm.posts[0].headers["authorization"] == "Bearer none"


def test_fake_server_lists_models_through_the_sdk(llm):
    sdk = openai.OpenAI(base_url=llm.base_url, api_key=KEY, max_retries=0)
    assert [m.id for m in sdk.models.list()] == ["fake-model"]
    assert llm.requests[0].method == "GET" and llm.posts == []
