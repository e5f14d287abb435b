"""Reports over the usage ledger: totals by model, entity and operation, and cost per UTC day.

Every number is aggregated by the database (SUM/COUNT with GROUP BY), never by loading the ledger into
Python; only the grouped rows (one per model, entity, operation or day) come back. Cost sums are rounded
to 10 decimals, as `app.services.usage.cost_of` rounds each row, so float noise in the database's sum
never shows and the totals equal the sum of the rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, cast, func, literal_column, select
from sqlalchemy.sql.elements import ColumnElement

from app.errors import ValidationFailed
from app.extensions import db
from app.models import LlmModel, UsageRecord

# The operations the ledger records (app.services.usage.record_usage callers).
OPERATIONS = ("chat", "embedding", "rerank", "tool", "judge")
GRANULARITIES = ("day",)
SHAPES = ("list", "keyed")  # how by_model / by_entity / by_operation are given
DEFAULT_SERIES_DAYS = 30
MAX_SERIES_DAYS = 366
COST_DECIMALS = 10
# Ledger columns a stats or cost request may filter on, besides the period.
_FILTERS = ("entity_type", "entity_id", "operation", "conversation_id", "integration_id")


@dataclass(frozen=True)
class Period:
    """A half-open UTC interval [start, end); either side may be open (None)."""

    start: datetime | None = None
    end: datetime | None = None

    @classmethod
    def from_args(cls, start: date | datetime | None, end: date | datetime | None) -> Period:
        """From query values: a date starts at its midnight; an end date includes its whole day, an end
        datetime its own instant. Naive datetimes are UTC. 422 when the start is after the end."""
        lower = _as_utc(start, "start_date") if start is not None else None
        upper = _end_bound(end) if end is not None else None
        if lower is not None and upper is not None and lower >= upper:
            raise _field_error("end_date", "must not be before start_date")
        return cls(lower, upper)

    def conditions(self, column) -> list[ColumnElement[bool]]:
        conditions = []
        if self.start is not None:
            conditions.append(column >= self.start)
        if self.end is not None:
            conditions.append(column < self.end)
        return conditions


def _as_utc(value: date | datetime, field: str) -> datetime:
    """The UTC instant of a query value; 422 naming `field` when it lies outside the years 1..9999 in
    UTC (0001-01-01T00:00+01:00, 9999-12-31T23:00-05:00), which datetime cannot hold."""
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as exc:
        raise _field_error(field, "is out of range") from exc


def _end_bound(end: date | datetime) -> datetime:
    """The exclusive upper bound of an inclusive end, at the database's resolution for a datetime."""
    step = timedelta(microseconds=1) if isinstance(end, datetime) else timedelta(days=1)
    try:
        return _as_utc(end, "end_date") + step
    except OverflowError as exc:  # the last instant or day of year 9999
        raise _field_error("end_date", "is out of range") from exc


def _field_error(field: str, problem: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {problem}.", details={"fields": {field: [problem]}})


def round_cost(value: float | None) -> float:
    return round(float(value or 0.0), COST_DECIMALS)


def _aggregates() -> tuple:
    return (
        func.count(UsageRecord.id).label("calls"),
        func.coalesce(func.sum(UsageRecord.prompt_tokens), 0).label("prompt_tokens"),
        func.coalesce(func.sum(UsageRecord.completion_tokens), 0).label("completion_tokens"),
        func.coalesce(func.sum(UsageRecord.cached_tokens), 0).label("cached_tokens"),
        func.coalesce(func.sum(UsageRecord.cost), 0.0).label("cost"),
    )


def _numbers(row: Any) -> dict[str, Any]:
    prompt, completion = int(row.prompt_tokens), int(row.completion_tokens)
    return {
        "calls": int(row.calls),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cached_tokens": int(row.cached_tokens),
        "total_tokens": prompt + completion,
        "cost": round_cost(row.cost),
    }


def _conditions(args: dict, period: Period) -> list[ColumnElement[bool]]:
    conditions = period.conditions(UsageRecord.created_at)
    for name in _FILTERS:
        if args.get(name) is not None:
            conditions.append(getattr(UsageRecord, name) == args[name])
    return conditions


def _grouped(conditions: list, *keys) -> list[dict[str, Any]]:
    statement = select(*keys, *_aggregates()).where(*conditions).group_by(*keys)
    groups = [
        {**{key.key: getattr(row, key.key) for key in keys}, **_numbers(row)}
        for row in db.session.execute(statement)
    ]
    # Sorted here, not in SQL, so NULL keys order the same on SQLite and PostgreSQL; a handful of rows.
    groups.sort(key=lambda g: (-g["cost"], -g["calls"], *(str(g[key.key] or "") for key in keys)))
    return groups


def usage_stats(args: dict) -> dict[str, Any]:
    """Totals over the ledger rows matching the filters, and the same numbers by model, entity and operation."""
    period = Period.from_args(args.get("start_date"), args.get("end_date"))
    conditions = _conditions(args, period)
    totals = _numbers(db.session.execute(select(*_aggregates()).where(*conditions)).one())
    stats = {
        "calls": totals["calls"],
        "prompt_tokens": totals["prompt_tokens"],
        "completion_tokens": totals["completion_tokens"],
        "cached_tokens": totals["cached_tokens"],
        "total_tokens": totals["total_tokens"],
        "total_cost": totals["cost"],
        "by_model": _grouped(conditions, UsageRecord.model_ref, UsageRecord.model_name),
        "by_entity": _grouped(conditions, UsageRecord.entity_type, UsageRecord.entity_id),
        "by_operation": _grouped(conditions, UsageRecord.operation),
    }
    if args.get("shape") == "keyed":
        stats["by_model"] = _keyed_by_model(stats["by_model"])
        stats["by_entity"] = {group["entity_id"] or group["entity_type"]: group for group in stats["by_entity"]}
        stats["by_operation"] = {group["operation"]: group for group in stats["by_operation"]}
    return stats


def _keyed_by_model(groups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The contract's form: an object keyed by the model's name ("gpt-4o-mini"): its Magnet name while it
    exists (names are unique), else the provider's model name the rows recorded."""
    names = dict(db.session.execute(select(LlmModel.id, LlmModel.name).where(
        LlmModel.id.in_([g["model_ref"] for g in groups if g["model_ref"]]))).all())
    keyed: dict[str, dict[str, Any]] = {}
    for group in groups:
        key = names.get(group["model_ref"]) or group["model_name"] or group["model_ref"] or "unknown"
        while key in keyed:  # a deleted model's rows named like a live one: kept apart, not summed
            key = f"{key} ({group['model_ref'] or 'deleted'})"
        keyed[key] = group
    return keyed


def _utc_day(column) -> ColumnElement:
    """The UTC calendar day of a timestamp column, on either database.

    SQLite stores UTC text, and `date()` cuts its day. PostgreSQL's `date(timestamptz)` would use the
    session's time zone, so the value is first shifted to UTC; the literal (not a bound parameter) keeps
    the SELECT and GROUP BY expressions identical.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        return cast(func.timezone(literal_column("'UTC'"), column), Date)
    return func.date(column)


def _day_key(value: date | datetime | str) -> str:
    return value.isoformat()[:10] if isinstance(value, date) else str(value)[:10]


def _series_days(period_args: dict) -> tuple[date, date]:
    """First and last UTC day of a cost series: by default the 30 days ending today."""
    start, end = period_args.get("start_date"), period_args.get("end_date")
    last = _as_utc(end, "end_date").date() if end is not None else None
    first = _as_utc(start, "start_date").date() if start is not None else None
    if last is None:
        last = datetime.now(UTC).date()
        if first is not None and first > last:
            raise _field_error("start_date", "is in the future; give an end_date too")
    if first is None:
        try:
            first = last - timedelta(days=DEFAULT_SERIES_DAYS - 1)
        except OverflowError as exc:  # the default period would start before year 1
            raise _field_error("end_date", "is out of range; give a start_date too") from exc
    if (last - first).days + 1 > MAX_SERIES_DAYS:
        raise _field_error("end_date", f"the period may span at most {MAX_SERIES_DAYS} days")
    return first, last


def cost_series(args: dict) -> dict[str, Any]:
    """Cost, tokens and calls per UTC day over a period, with zero days for the days without usage."""
    granularity = args.get("granularity", "day")
    if granularity not in GRANULARITIES:
        raise _field_error("granularity", f"must be one of: {', '.join(GRANULARITIES)}")
    first, last = _series_days(args)
    # The bounds are the days' edges unless the caller gave exact datetimes.
    start = args.get("start_date") if args.get("start_date") is not None else first
    end = args.get("end_date") if args.get("end_date") is not None else last
    conditions = _conditions(args, Period.from_args(start, end))

    day = _utc_day(UsageRecord.created_at)
    statement = select(day.label("day"), *_aggregates()).where(*conditions).group_by(day)
    by_day = {_day_key(row.day): _numbers(row) for row in db.session.execute(statement)}
    total = db.session.execute(select(func.coalesce(func.sum(UsageRecord.cost), 0.0)).where(*conditions))

    series = []
    for offset in range((last - first).days + 1):
        key = (first + timedelta(days=offset)).isoformat()
        numbers = by_day.get(key) or {
            "calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0,
            "total_tokens": 0, "cost": 0.0,
        }
        series.append({"date": key, **numbers})
    return {
        "granularity": granularity,
        "start_date": first.isoformat(),
        "end_date": last.isoformat(),
        "total_cost": round_cost(total.scalar_one()),
        "series": series,
    }
