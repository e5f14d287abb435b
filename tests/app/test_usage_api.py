"""Usage stats, daily costs and conversation analytics, checked against numbers computed by hand."""
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import text

from app.extensions import db
from app.models import Agent, Conversation, LlmModel, Message, UsageRecord
from app.services.usage import Usage, metering, record_usage

T = datetime(2026, 11, 20, tzinfo=UTC)  # midnight UTC starting the 20th


def _model(name, input_per_1k, output_per_1k, cached_input_per_1k=None):
    model = LlmModel(name=name, provider="openai", model_id=f"{name}-id", kind="chat",
                     input_per_1k=input_per_1k, output_per_1k=output_per_1k,
                     cached_input_per_1k=cached_input_per_1k)
    db.session.add(model)
    db.session.commit()
    return model


def _row(created_at, cost, *, entity_type="rag_tool", entity_id="rag_1", operation="chat", prompt=0, completion=0):
    db.session.add(UsageRecord(entity_type=entity_type, entity_id=entity_id, operation=operation,
                               prompt_tokens=prompt, completion_tokens=completion, cost=cost,
                               created_at=created_at))


def _error(res, field):
    assert res.status_code == 422, res.get_data(as_text=True)
    body = res.json
    assert body["success"] is False
    assert body["error"]["code"] == "validation_failed"
    assert field in body["error"]["details"]["fields"], body
    return body["error"]


# --------------------------------------------------------------------------------------------- stats


@pytest.fixture
def ledger(app):
    """Four calls through record_usage, priced by real models."""
    a = _model("model-a", 1.0, 2.0)
    b = _model("model-b", 0.5, 1.5, cached_input_per_1k=0.1)
    with metering(conversation_id="conv_1", integration_id="int_1"):
        # 300 * 1.0/1000 + 100 * 2.0/1000 = 0.3 + 0.2 = 0.5
        record_usage(entity_type="rag_tool", entity_id="rag_1", operation="chat", model=a,
                     usage=Usage(prompt_tokens=300, completion_tokens=100))
    # 600 uncached * 0.5/1000 + 400 cached * 0.1/1000 + 200 * 1.5/1000 = 0.3 + 0.04 + 0.3 = 0.64
    record_usage(entity_type="rag_tool", entity_id="rag_1", operation="chat", model=b,
                 usage=Usage(prompt_tokens=1000, completion_tokens=200, cached_tokens=400))
    # 50 * 1.0/1000 + 25 * 2.0/1000 = 0.05 + 0.05 = 0.1
    record_usage(entity_type="evaluation", entity_id="eval_1", operation="judge", model=a,
                 usage=Usage(prompt_tokens=50, completion_tokens=25))
    # a tool call with no model: no tokens, no cost
    record_usage(entity_type="api_tool", entity_id="apitool_1", operation="tool", model=None, usage=Usage())
    return a, b


def test_stats_totals_and_breakdowns(api, ledger):
    a, b = ledger
    res = api.get("/api/usage/stats")
    assert res.status_code == 200, res.json
    assert res.json["success"] is True
    data = res.json["data"]
    # prompt 300 + 1000 + 50 = 1350; completion 100 + 200 + 25 = 325; cost 0.5 + 0.64 + 0.1 + 0 = 1.24
    assert data["prompt_tokens"] == 1350
    assert data["completion_tokens"] == 325
    assert data["total_tokens"] == 1675
    assert data["cached_tokens"] == 400
    assert data["calls"] == 4
    assert data["total_cost"] == 1.24

    # by cost, highest first: b 0.64, a 0.5 + 0.1 = 0.6, no model 0
    assert data["by_model"] == [
        {"model_ref": b.id, "model_name": "model-b-id", "calls": 1, "prompt_tokens": 1000,
         "completion_tokens": 200, "cached_tokens": 400, "total_tokens": 1200, "cost": 0.64},
        {"model_ref": a.id, "model_name": "model-a-id", "calls": 2, "prompt_tokens": 350,
         "completion_tokens": 125, "cached_tokens": 0, "total_tokens": 475, "cost": 0.6},
        {"model_ref": None, "model_name": None, "calls": 1, "prompt_tokens": 0,
         "completion_tokens": 0, "cached_tokens": 0, "total_tokens": 0, "cost": 0.0},
    ]
    # rag_1: 0.5 + 0.64 = 1.14 over 300 + 1000 prompt and 100 + 200 completion tokens
    entities = {(e["entity_type"], e["entity_id"]): e for e in data["by_entity"]}
    assert [(e["entity_type"], e["cost"]) for e in data["by_entity"]] == [
        ("rag_tool", 1.14), ("evaluation", 0.1), ("api_tool", 0.0)]
    assert entities[("rag_tool", "rag_1")]["total_tokens"] == 1600
    assert entities[("evaluation", "eval_1")]["total_tokens"] == 75
    assert {o["operation"]: (o["calls"], o["cost"]) for o in data["by_operation"]} == {
        "chat": (2, 1.14), "judge": (1, 0.1), "tool": (1, 0.0)}

    for breakdown in ("by_model", "by_entity", "by_operation"):
        groups = data[breakdown]
        assert round(sum(g["cost"] for g in groups), 10) == data["total_cost"], breakdown
        assert sum(g["total_tokens"] for g in groups) == data["total_tokens"], breakdown
        assert sum(g["calls"] for g in groups) == data["calls"], breakdown


@pytest.mark.parametrize("query, calls, cost", [
    ("entity_type=rag_tool", 2, 1.14),                      # 0.5 + 0.64
    ("entity_type=rag_tool&entity_id=rag_1", 2, 1.14),
    ("entity_id=eval_1", 1, 0.1),
    ("entity_type=rag_tool&entity_id=eval_1", 0, 0.0),      # filters combine with AND
    ("operation=judge", 1, 0.1),
    ("operation=tool", 1, 0.0),
    ("conversation_id=conv_1", 1, 0.5),                     # only the call made inside metering(...)
    ("integration_id=int_1", 1, 0.5),
    ("conversation_id=conv_other", 0, 0.0),
])
def test_stats_filters(api, ledger, query, calls, cost):
    data = api.get(f"/api/usage/stats?{query}").json["data"]
    assert (data["calls"], data["total_cost"]) == (calls, cost)
    assert round(sum(m["cost"] for m in data["by_model"]), 10) == cost


def test_stats_of_an_empty_ledger_are_zeros(api):
    data = api.get("/api/usage/stats").json["data"]
    assert data == {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0,
                    "total_tokens": 0, "total_cost": 0.0, "by_model": [], "by_entity": [], "by_operation": []}


@pytest.fixture
def days(app):
    """Rows on the edges of UTC days; costs are powers of two, so each sum names its rows."""
    tick = timedelta(microseconds=1)
    _row(T - tick, 1, prompt=10, completion=1)                   # 2026-11-19 23:59:59.999999
    _row(T, 2, prompt=20, completion=2)                          # 2026-11-20 00:00:00
    _row(T + timedelta(days=1, hours=12), 4, prompt=40, completion=4)   # 2026-11-21 12:00
    _row(T + timedelta(days=2) - tick, 8, prompt=80, completion=8)      # 2026-11-21 23:59:59.999999
    _row(T + timedelta(days=2), 16, prompt=160, completion=16)           # 2026-11-22 00:00:00
    db.session.commit()


@pytest.mark.parametrize("params, cost", [
    ({"start_date": "2026-11-20", "end_date": "2026-11-21"}, 2 + 4 + 8),       # whole days, both included
    ({"start_date": "2026-11-20", "end_date": "2026-11-20"}, 2),
    ({"end_date": "2026-11-19"}, 1),
    ({"start_date": "2026-11-22"}, 16),
    # an end datetime is inclusive up to its instant
    ({"start_date": "2026-11-20T00:00:00Z", "end_date": "2026-11-21T12:00:00Z"}, 2 + 4),
    ({"start_date": "2026-11-21T12:00:00.000001Z"}, 8 + 16),
    # 01:00 at +01:00 is midnight UTC; a naive datetime is UTC
    ({"start_date": "2026-11-20T01:00:00+01:00", "end_date": "2026-11-20"}, 2),
    ({"start_date": "2026-11-19T23:59:59.999999", "end_date": "2026-11-20T00:00:00"}, 1 + 2),
    ({}, 1 + 2 + 4 + 8 + 16),
])
def test_stats_date_boundaries(api, days, params, cost):
    data = api.get("/api/usage/stats", query_string=params).json["data"]
    assert data["total_cost"] == cost
    assert data["prompt_tokens"] == cost * 10 and data["completion_tokens"] == cost


@pytest.mark.parametrize("query, field", [
    ("start_date=yesterday", "start_date"),
    ("start_date=2026-13-01", "start_date"),
    ("end_date=2026-11-20T25:00", "end_date"),
    ("start_date=2026-11-21&end_date=2026-11-20", "end_date"),
    ("start_date=2026-11-20T10:00:00Z&end_date=2026-11-20T09:59:59Z", "end_date"),
    ("operation=teleport", "operation"),
    ("entity_type=" + "x" * 41, "entity_type"),
])
def test_stats_bad_arguments_are_422(api, query, field):
    _error(api.get(f"/api/usage/stats?{query}"), field)


# --------------------------------------------------------------------------------------------- costs


def test_cost_series_has_zero_days(api, days):
    res = api.get("/api/usage/costs?start_date=2026-11-18&end_date=2026-11-23")
    assert res.status_code == 200, res.json
    data = res.json["data"]
    assert data["granularity"] == "day"
    assert (data["start_date"], data["end_date"]) == ("2026-11-18", "2026-11-23")
    # 18th: nothing; 19th: 1; 20th: 2; 21st: 4 + 8; 22nd: 16; 23rd: nothing
    assert [(p["date"], p["cost"], p["calls"]) for p in data["series"]] == [
        ("2026-11-18", 0.0, 0), ("2026-11-19", 1.0, 1), ("2026-11-20", 2.0, 1),
        ("2026-11-21", 12.0, 2), ("2026-11-22", 16.0, 1), ("2026-11-23", 0.0, 0)]
    assert [p["prompt_tokens"] for p in data["series"]] == [0, 10, 20, 120, 160, 0]
    assert [p["completion_tokens"] for p in data["series"]] == [0, 1, 2, 12, 16, 0]
    assert data["total_cost"] == 31.0 == sum(p["cost"] for p in data["series"])


def test_cost_series_filters_and_partial_days(api, days):
    _row(T + timedelta(hours=5), 32, entity_type="agent", entity_id="agent_1")
    db.session.commit()
    data = api.get("/api/usage/costs?start_date=2026-11-20&end_date=2026-11-20&entity_type=agent").json["data"]
    assert [(p["date"], p["cost"]) for p in data["series"]] == [("2026-11-20", 32.0)]
    # up to 12:00 on the 21st: the 21st holds only the 12:00 row (4), not the 23:59 one (8)
    data = api.get("/api/usage/costs?start_date=2026-11-20&end_date=2026-11-21T12:00:00Z&entity_type=rag_tool").json["data"]
    assert [(p["date"], p["cost"]) for p in data["series"]] == [("2026-11-20", 2.0), ("2026-11-21", 4.0)]
    assert data["total_cost"] == 6.0


def test_cost_series_days_are_utc_whatever_the_session_time_zone(app, days):
    """PostgreSQL's date() would follow the session's zone; a UTC+14 session must not move 23:59Z a day on."""
    from app.services.usage_stats import cost_series

    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL TIME ZONE 'Pacific/Kiritimati'"))
    data = cost_series({"start_date": date(2026, 11, 19), "end_date": date(2026, 11, 22), "granularity": "day"})
    assert [p["cost"] for p in data["series"]] == [1.0, 2.0, 12.0, 16.0]
    db.session.rollback()


def test_cost_series_defaults_to_the_last_30_days(api):
    now = datetime.now(UTC)
    _row(now, 0.25)
    _row(now - timedelta(days=29), 0.5)   # the first day of the window
    _row(now - timedelta(days=30), 100)   # one day before it
    db.session.commit()
    data = api.get("/api/usage/costs").json["data"]
    series = data["series"]
    today = now.date()
    assert len(series) == 30
    assert series[-1]["date"] == data["end_date"] == today.isoformat()
    assert series[0]["date"] == data["start_date"] == (today - timedelta(days=29)).isoformat()
    assert (series[0]["cost"], series[-1]["cost"]) == (0.5, 0.25)
    assert data["total_cost"] == 0.75
    # only an end_date: the 30 days ending that day
    data = api.get("/api/usage/costs?end_date=2026-11-30").json["data"]
    assert (data["start_date"], len(data["series"])) == ("2026-11-01", 30)


def test_cost_series_range_limits(api):
    # 2024 is a leap year: 2024-01-01 .. 2024-12-31 is 366 days, one more is 367
    assert len(api.get("/api/usage/costs?start_date=2024-01-01&end_date=2024-12-31").json["data"]["series"]) == 366
    error = _error(api.get("/api/usage/costs?start_date=2024-01-01&end_date=2025-01-01"), "end_date")
    assert "366" in error["message"]
    _error(api.get("/api/usage/costs?start_date=2026-11-21&end_date=2026-11-20"), "end_date")
    _error(api.get("/api/usage/costs?start_date=2999-01-01"), "start_date")  # after today, no end
    _error(api.get("/api/usage/costs?granularity=week"), "granularity")
    _error(api.get("/api/usage/costs?end_date=9999-12-31"), "end_date")
    _error(api.get("/api/usage/costs?start_date=2026-02-30"), "start_date")


@pytest.mark.parametrize("path", ["/api/usage/costs", "/api/usage/stats", "/api/analytics/conversations"])
@pytest.mark.parametrize("query, field", [
    ("end_date=9999-12-31", "end_date"),  # the day after it, where the period ends, does not exist
    ("end_date=9999-12-31T23:59:59.999999", "end_date"),
    ("end_date=9999-12-31T23:00:00-05:00", "end_date"),  # 04:00 UTC in year 10000
    ("end_date=0001-01-01T00:00:00%2B01:00", "end_date"),  # 23:00 UTC in year 0
    ("start_date=0001-01-01T00:00:00%2B01:00&end_date=0001-01-02", "start_date"),
    ("start_date=9999-12-31T23:00:00-05:00&end_date=9999-12-31", "start_date"),
    ("start_date=9999-12-31T23:00:00-05:00", "start_date"),
])
def test_dates_beyond_what_datetime_holds_are_422(api, path, query, field):
    _error(api.get(f"{path}?{query}"), field)


def test_cost_series_default_period_before_year_1_is_422(api):
    # without a start the series is the 30 days ending at end_date: from 0001-01-30 on they exist
    _error(api.get("/api/usage/costs?end_date=0001-01-01"), "end_date")
    _error(api.get("/api/usage/costs?end_date=0001-01-29T12:00:00Z"), "end_date")
    assert api.get("/api/usage/costs?end_date=0001-01-30").json["data"]["start_date"] == "0001-01-01"
    # stats and analytics derive no default period: the same end is an ordinary, empty one
    assert api.get("/api/usage/stats?end_date=0001-01-01").json["data"]["calls"] == 0
    assert api.get("/api/analytics/conversations?end_date=0001-01-01").json["data"]["messages"] == 0
    # a start alone runs to today: too long, or (in year 9999) in the future
    _error(api.get("/api/usage/costs?start_date=0001-01-01"), "end_date")
    _error(api.get("/api/usage/costs?start_date=9999-12-31"), "start_date")


def test_cost_series_reach_the_first_and_last_days(api):
    first = api.get("/api/usage/costs?start_date=0001-01-01&end_date=0001-01-30").json["data"]
    assert (first["start_date"], first["end_date"], len(first["series"])) == ("0001-01-01", "0001-01-30", 30)
    # the last day itself cannot be an end (its next midnight is out of range), its last microsecond but one can
    last = api.get("/api/usage/costs?start_date=9999-12-31&end_date=9999-12-31T23:59:59.999998").json["data"]
    assert [day["date"] for day in last["series"]] == ["9999-12-31"]


# --------------------------------------------------------------------------------------------- analytics


def _agent(name):
    agent = Agent(name=name)
    db.session.add(agent)
    db.session.flush()
    return agent


def _conversation(agent, day, messages):
    """messages: (role, fields) in order, one minute apart from 10:00 on `day` (UTC)."""
    start = T + timedelta(days=day, hours=10)
    conversation = Conversation(agent_id=agent.id, message_count=len(messages), created_at=start)
    db.session.add(conversation)
    db.session.flush()
    for i, (role, fields) in enumerate(messages):
        db.session.add(Message(conversation_id=conversation.id, role=role, content=role,
                               created_at=start + timedelta(minutes=i), **fields))
    return conversation


def _call(name, tool_id, status, latency_ms=None):
    call = {"id": f"call_{name}", "name": name, "tool_id": tool_id, "arguments": {}, "status": status,
            "output": None, "error": None if status == "ok" else status}
    if latency_ms is not None:
        call["latency_ms"] = latency_ms
    return call


@pytest.fixture
def conversations(app):
    a, b = _agent("agent-a"), _agent("agent-b")
    user = ("user", {})
    _conversation(a, 0, [  # 2026-11-20: 4 messages
        user,
        ("assistant", {"latency_ms": 100.0, "prompt_tokens": 100, "completion_tokens": 20, "cost": 0.01,
                       "tool_calls": [_call("search", "rag_s", "ok", 10), _call("search", "rag_s", "error", 30)]}),
        user,
        ("assistant", {"latency_ms": 300.0, "prompt_tokens": 200, "completion_tokens": 10, "cost": 0.02,
                       "no_answer": True, "tool_calls": [_call("search", "rag_s", "timeout", 5000)]}),
    ])
    _conversation(a, 1, [  # 2026-11-21: 2 messages
        user,
        ("assistant", {"latency_ms": 200.0, "prompt_tokens": 50, "completion_tokens": 0, "cost": 0.005,
                       "status": "timeout", "no_answer": True,
                       "tool_calls": [_call("weather", "apitool_w", "ok", 20), _call("weather", "apitool_w", "ok")]}),
    ])
    _conversation(a, 1, [user])  # 2026-11-21: 1 message, not answered yet
    _conversation(b, 1, [  # another agent
        user, ("assistant", {"latency_ms": 1000.0, "cost": 1.0, "tool_calls": [_call("search", "rag_s", "ok", 40)]}),
    ])
    _conversation(a, 5, [user, ("assistant", {"latency_ms": 9999.0, "cost": 3.0})])  # 2026-11-25: after the period
    db.session.commit()
    return a, b


def test_conversation_analytics(api, conversations):
    a, _ = conversations
    res = api.get(f"/api/analytics/conversations?agent_id={a.id}&start_date=2026-11-20&end_date=2026-11-21")
    assert res.status_code == 200, res.json
    data = res.json["data"]
    # agent a in the period: conversations with 4, 2 and 1 messages
    assert data["conversations"] == 3
    assert (data["messages"], data["user_messages"], data["assistant_messages"]) == (7, 4, 3)
    # mean 7/3 = 2.333; median of 1, 2, 4 is 2; max 4
    assert data["messages_per_conversation"] == {"mean": 2.333, "median": 2.0, "max": 4}
    assert data["tool_usage"] == [
        # search: 3 calls, 1 error, 1 timeout -> (1 + 1) / 3 = 0.6667; latency (10 + 30 + 5000) / 3 = 1680
        {"name": "search", "tool_id": "rag_s", "calls": 3, "errors": 1, "timeouts": 1,
         "error_rate": 0.6667, "mean_latency_ms": 1680.0},
        # weather: 2 calls, both ok; only one has a latency (20)
        {"name": "weather", "tool_id": "apitool_w", "calls": 2, "errors": 0, "timeouts": 0,
         "error_rate": 0.0, "mean_latency_ms": 20.0},
    ]
    # latencies 100, 200, 300 (n = 3), nearest rank ceil(p/100 * 3): p50 -> rank 2, p90/p95/p99 -> rank 3
    assert data["latency_ms"] == {"p50": 200.0, "p90": 300.0, "p95": 300.0, "p99": 300.0, "mean": 200.0}
    assert data["no_answer_rate"] == 0.6667  # 2 of 3 answers
    assert data["failed_rate"] == 0.3333     # 1 of 3 (the timeout)
    assert data["tokens"] == {"prompt": 350, "completion": 30}  # 100 + 200 + 50; 20 + 10 + 0
    assert data["cost"] == 0.035              # 0.01 + 0.02 + 0.005


def test_conversation_analytics_filters(api, conversations):
    a, b = conversations
    # the end day is inclusive: only the 20th's conversation
    data = api.get(f"/api/analytics/conversations?agent_id={a.id}&end_date=2026-11-20").json["data"]
    assert (data["conversations"], data["messages"], data["assistant_messages"]) == (1, 4, 2)
    assert data["latency_ms"]["p50"] == 100.0  # 100, 300: rank ceil(0.5 * 2) = 1
    data = api.get(f"/api/analytics/conversations?agent_id={b.id}").json["data"]
    assert (data["conversations"], data["messages"], data["cost"]) == (1, 2, 1.0)
    assert data["tool_usage"][0]["calls"] == 1
    # every agent, all time: 4 + 2 + 1 + 2 + 2 messages in 5 conversations; 4 search calls
    data = api.get("/api/analytics/conversations").json["data"]
    assert (data["conversations"], data["messages"], data["assistant_messages"]) == (5, 11, 5)
    assert data["tool_usage"][0]["name"] == "search" and data["tool_usage"][0]["calls"] == 4
    assert data["cost"] == 4.035  # 0.035 + 1.0 + 3.0
    assert data["latency_ms"]["p99"] == 9999.0


def test_latency_percentiles_use_nearest_rank(api):
    agent = _agent("agent-p")
    # 20 latencies 10, 20, ..., 200 in a scrambled order (37 is coprime with 20), plus one without a latency
    latencies = [((i * 37) % 20 + 1) * 10.0 for i in range(20)]
    assert sorted(latencies) == [10.0 * k for k in range(1, 21)]
    for latency in latencies:
        _conversation(agent, 0, [("user", {}), ("assistant", {"latency_ms": latency})])
    _conversation(agent, 0, [("user", {}), ("assistant", {"latency_ms": None, "status": "failed"})])
    db.session.commit()
    data = api.get("/api/analytics/conversations").json["data"]
    # nearest rank = ceil(p/100 * 20): p50 -> 10th (100), p90 -> 18th (180), p95 -> 19th (190),
    # p99 -> ceil(19.8) = 20th (200). Linear interpolation would give p50 = 105, p95 = 190.5.
    # mean = (10 + 200) / 2 = 105
    assert data["latency_ms"] == {"p50": 100.0, "p90": 180.0, "p95": 190.0, "p99": 200.0, "mean": 105.0}
    assert data["failed_rate"] == round(1 / 21, 4) == 0.0476
    assert data["no_answer_rate"] == 0.0
    # 21 conversations of 2 messages each
    assert data["messages_per_conversation"] == {"mean": 2.0, "median": 2.0, "max": 2}


def test_latency_percentiles_when_the_messages_went_meanwhile(app):
    # The count of timed messages (from _by_role) said 3, but they were deleted before the percentiles were
    # read: nulls, not NoResultFound.
    from app.services.analytics import _latency_percentiles

    assert _latency_percentiles([], timed=3) == {"p50": None, "p90": None, "p95": None, "p99": None}


def test_analytics_of_nothing_are_zeros_and_nulls(api):
    data = api.get("/api/analytics/conversations?agent_id=agent_missing").json["data"]
    assert data == {
        "conversations": 0, "messages": 0, "user_messages": 0, "assistant_messages": 0,
        "messages_per_conversation": {"mean": None, "median": None, "max": None},
        "tool_usage": [],
        "latency_ms": {"p50": None, "p90": None, "p95": None, "p99": None, "mean": None},
        "no_answer_rate": None, "failed_rate": None,
        "tokens": {"prompt": 0, "completion": 0}, "cost": 0.0,
    }


def test_analytics_bad_arguments_are_422(api):
    _error(api.get("/api/analytics/conversations?start_date=2026-11-21&end_date=2026-11-20"), "end_date")
    _error(api.get("/api/analytics/conversations?end_date=soon"), "end_date")


# --------------------------------------------------------------------------------------------- roles


@pytest.mark.parametrize("path", ["/api/usage/stats", "/api/usage/costs", "/api/analytics/conversations"])
def test_a_viewer_key_is_enough(client, make_key, path):
    assert client.get(path).status_code == 401
    res = client.get(path, headers={"X-API-Key": make_key("viewer")})
    assert res.status_code == 200, res.get_data(as_text=True)
    assert res.json["success"] is True
