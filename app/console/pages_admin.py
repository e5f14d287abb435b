"""Usage (cost and tokens per day, by model, by entity) and, for admins, API keys and users."""
from datetime import UTC, date, datetime, timedelta

from flask import render_template, request

from app.console.access import page
from app.console.blueprint import bp
from app.console.charts import bar_chart
from app.console.listing import list_args
from app.models import ROLES
from app.services import api_keys, usage_stats, users

DEFAULT_DAYS = 30


def _period() -> tuple[date, date]:
    today = datetime.now(UTC).date()
    try:
        days = min(max(int(request.args.get("days", DEFAULT_DAYS)), 1), 366)
    except ValueError:
        days = DEFAULT_DAYS
    return today - timedelta(days=days - 1), today


@bp.get("/usage", endpoint="usage")
@page("viewer")
def usage_page():
    """Cost and tokens per day, and totals by model and by entity, over the last `days` days."""
    first, last = _period()
    series = usage_stats.cost_series({"start_date": first, "end_date": last})
    stats = usage_stats.usage_stats({"start_date": first, "end_date": last})
    days = [(p["date"][5:], p["cost"]) for p in series["series"]]
    tokens = [(p["date"][5:], p["total_tokens"]) for p in series["series"]]
    return render_template("console/usage.html", section="Usage", series=series, stats=stats,
                           cost_chart=bar_chart(days, label="Cost per day"),
                           token_chart=bar_chart(tokens, label="Tokens per day"), days=(last - first).days + 1)


@bp.get("/admin/access", endpoint="access_admin")
@page("admin")
def access_admin():
    """API keys (create, shown once; revoke) and users."""
    keys = api_keys.list_keys({**list_args(), "include_revoked": False})
    people = users.list_users(list_args())
    return render_template("console/access.html", section="Keys and users", keys=keys, users=people,
                           roles=ROLES)
