"""Conversation analytics: volumes, messages per conversation, tool usage, latency, failure rates, cost.

The period selects messages by their `created_at`; `conversations` counts the conversations with at least
one message in it, so every number describes the same activity. Counts, sums and means come from SQL
aggregates. Percentiles use the nearest-rank method (the value at rank ceil(p/100 * n) of the sorted
latencies, 1-based), picked by ROW_NUMBER() in one statement, so they are actual observed values and need no
database-specific percentile function. Tool calls live in a JSON list on each assistant message, which
SQLite and PostgreSQL cannot unnest the same way, so that column alone is streamed and counted in Python.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.sql.elements import ColumnElement

from app.extensions import db
from app.models import Conversation, Message
from app.services.usage_stats import Period, round_cost

PERCENTILES = (50, 90, 95, 99)
RATE_DECIMALS = 4
MEAN_DECIMALS = 3  # milliseconds and mean counts


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, RATE_DECIMALS) if whole else None


def _ms(value: float | None) -> float | None:
    return round(float(value), MEAN_DECIMALS) if value is not None else None


def _conditions(args: dict, period: Period) -> list[ColumnElement[bool]]:
    conditions = period.conditions(Message.created_at)
    if args.get("agent_id") is not None:
        agent_conversations = select(Conversation.id).where(Conversation.agent_id == args["agent_id"])
        conditions.append(Message.conversation_id.in_(agent_conversations))
    return conditions


def conversation_analytics(args: dict) -> dict[str, Any]:
    """Analytics of the conversations (optionally of one agent) over a period; empty data gives zeros/nulls."""
    period = Period.from_args(args.get("start_date"), args.get("end_date"))
    conditions = _conditions(args, period)
    by_role = _by_role(conditions)
    user, assistant = by_role.get("user", {}), by_role.get("assistant", {})
    answers = assistant.get("messages", 0)
    per_conversation = _messages_per_conversation(conditions)
    return {
        "conversations": per_conversation.pop("count"),
        "messages": sum(role["messages"] for role in by_role.values()),
        "user_messages": user.get("messages", 0),
        "assistant_messages": answers,
        "messages_per_conversation": per_conversation,
        "tool_usage": _tool_usage(conditions),
        "latency_ms": {
            **_latency_percentiles(conditions, assistant.get("timed", 0)),
            "mean": _ms(assistant.get("mean_latency")),
        },
        "no_answer_rate": _rate(assistant.get("no_answer", 0), answers),
        "failed_rate": _rate(assistant.get("failed", 0), answers),
        "tokens": {
            "prompt": sum(role["prompt"] for role in by_role.values()),
            "completion": sum(role["completion"] for role in by_role.values()),
        },
        "cost": round_cost(sum(role["cost"] for role in by_role.values())),
    }


def _by_role(conditions: list) -> dict[str, dict[str, Any]]:
    statement = (
        select(
            Message.role,
            func.count(Message.id).label("messages"),
            func.coalesce(func.sum(case((Message.no_answer.is_(True), 1), else_=0)), 0).label("no_answer"),
            func.coalesce(func.sum(case((Message.status != "completed", 1), else_=0)), 0).label("failed"),
            func.coalesce(func.sum(Message.prompt_tokens), 0).label("prompt"),
            func.coalesce(func.sum(Message.completion_tokens), 0).label("completion"),
            func.coalesce(func.sum(Message.cost), 0.0).label("cost"),
            func.count(Message.latency_ms).label("timed"),
            func.avg(Message.latency_ms).label("mean_latency"),
        )
        .where(*conditions)
        .group_by(Message.role)
    )
    return {
        row.role: {
            "messages": int(row.messages),
            "no_answer": int(row.no_answer),
            "failed": int(row.failed),
            "prompt": int(row.prompt),
            "completion": int(row.completion),
            "cost": float(row.cost),
            "timed": int(row.timed),
            "mean_latency": float(row.mean_latency) if row.mean_latency is not None else None,
        }
        for row in db.session.execute(statement)
    }


def _messages_per_conversation(conditions: list) -> dict[str, Any]:
    counts = (
        select(Message.conversation_id, func.count(Message.id).label("n"))
        .where(*conditions)
        .group_by(Message.conversation_id)
        .subquery()
    )
    row = db.session.execute(select(func.count(), func.avg(counts.c.n), func.max(counts.c.n))).one()
    conversations = int(row[0])
    if not conversations:
        return {"count": 0, "mean": None, "median": None, "max": None}
    # The median: the middle count, or the mean of the two middle counts when there is an even number
    # (for an odd number both ranks are the middle one).
    ranked, middle = _at_ranks(counts.c.n, ranks=lambda n: list(_median_ranks(n)))
    return {
        "count": conversations,
        "mean": round(float(row[1]), MEAN_DECIMALS),
        "median": sum(middle[r] for r in _median_ranks(ranked)) / 2 if ranked else None,
        "max": int(row[2]),
    }


def _median_ranks(n):
    """The two middle ranks of n values (the same one twice when n is odd); `n` is an int or SQL."""
    return (n + 1) // 2, n // 2 + 1


def _nearest_rank(p: int, n):
    """ceil(p * n / 100) in integers, no float rounding at the edge; `n` is an int or a SQL expression."""
    return (p * n + 99) // 100


def _at_ranks(column, *conditions, ranks: Callable[[Any], list]) -> tuple[int, dict[int, Any]]:
    """How many values of `column` match, and the values at the 1-based ranks `ranks(n)` of their ascending
    order. One statement, so that rows deleted between a count and a fetch cannot leave a rank empty."""
    ranked = select(column.label("value"), func.row_number().over(order_by=column).label("row_no"),
                    func.count().over().label("total")).where(*conditions).subquery()
    rows = db.session.execute(select(ranked).where(ranked.c.row_no.in_(ranks(ranked.c.total)))).all()
    return (int(rows[0].total), {int(row.row_no): row.value for row in rows}) if rows else (0, {})


def _latency_percentiles(conditions: list, timed: int) -> dict[str, float | None]:
    """Nearest-rank percentiles of the assistant messages' turn latency (`timed` of them have one)."""
    if not timed:
        return {f"p{p}": None for p in PERCENTILES}
    # n is counted again by the ranking statement itself: `timed` may be stale by then.
    n, values = _at_ranks(Message.latency_ms, *conditions, Message.role == "assistant",
                          Message.latency_ms.is_not(None), ranks=lambda n: [_nearest_rank(p, n) for p in PERCENTILES])
    return {f"p{p}": _ms(values[_nearest_rank(p, n)]) if n else None for p in PERCENTILES}


def _tool_usage(conditions: list) -> list[dict[str, Any]]:
    statement = (
        select(Message.tool_calls)
        .where(*conditions, Message.role == "assistant")
        .execution_options(yield_per=1000)
    )
    tools: dict[tuple[str | None, str | None], dict[str, Any]] = {}
    for calls in db.session.execute(statement).scalars():
        for call in calls or ():
            if not isinstance(call, dict):
                continue
            entry = tools.setdefault(
                (call.get("name"), call.get("tool_id")),
                {"calls": 0, "errors": 0, "timeouts": 0, "latency_sum": 0.0, "timed": 0},
            )
            entry["calls"] += 1
            status = call.get("status")
            entry["errors"] += status == "error"
            entry["timeouts"] += status == "timeout"
            latency = call.get("latency_ms")
            if isinstance(latency, int | float) and not isinstance(latency, bool):
                entry["latency_sum"] += latency
                entry["timed"] += 1
    usage = [
        {
            "name": name,
            "tool_id": tool_id,
            "calls": entry["calls"],
            "errors": entry["errors"],
            "timeouts": entry["timeouts"],
            # A timed-out call failed too, so the rate is (errors + timeouts) / calls.
            "error_rate": _rate(entry["errors"] + entry["timeouts"], entry["calls"]),
            "mean_latency_ms": _ms(entry["latency_sum"] / entry["timed"]) if entry["timed"] else None,
        }
        for (name, tool_id), entry in tools.items()
    ]
    usage.sort(key=lambda t: (-t["calls"], t["name"] or "", t["tool_id"] or ""))
    return usage
