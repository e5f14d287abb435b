"""Home: the health of every component, counts, the latest syncs and runs, cost per day this month."""
from datetime import UTC, datetime

from flask import render_template
from sqlalchemy import select

from app.console.access import page
from app.console.blueprint import bp
from app.console.charts import bar_chart
from app.extensions import db
from app.models import Evaluation, EvaluationRun, KnowledgeSource, SyncRun
from app.services import health, usage_stats

LATEST = 6


@bp.get("/")
@page("viewer")
def home():
    """Health, counts, latest syncs and evaluation runs, this month's cost per day."""
    today = datetime.now(UTC).date()
    costs = usage_stats.cost_series({"start_date": today.replace(day=1), "end_date": today})
    syncs = db.session.execute(
        select(SyncRun, KnowledgeSource.name).join(KnowledgeSource, KnowledgeSource.id == SyncRun.source_id)
        .order_by(SyncRun.created_at.desc()).limit(LATEST)).all()
    runs = db.session.execute(
        select(EvaluationRun, Evaluation.name).join(Evaluation, Evaluation.id == EvaluationRun.evaluation_id)
        .order_by(EvaluationRun.created_at.desc()).limit(LATEST)).all()
    chart = bar_chart([(p["date"][5:], p["cost"]) for p in costs["series"]], label="Cost per day this month")
    return render_template("console/home.html", section="Home", health=health.check_health(),
                           counts=health.status()["counts"], syncs=syncs, runs=runs, costs=costs, chart=chart)
