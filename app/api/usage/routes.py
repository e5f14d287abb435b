"""Usage reports over the ledger: tokens, calls and cost by model, entity and operation, and per day."""
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.common import envelope, ok
from app.api.usage.schemas import UsageCostArgs, UsageCostSeriesSchema, UsageStatsArgs, UsageStatsSchema
from app.auth import requires
from app.services import usage_stats

blp = Blueprint("usage", __name__, url_prefix="/api/usage", description="Usage: tokens, calls and cost")


@blp.route("/stats")
class UsageStats(MethodView):
    @requires("viewer")
    @blp.arguments(UsageStatsArgs, location="query")
    @blp.response(200, envelope(UsageStatsSchema))
    def get(self, args):
        """Usage totals over a period, by model, by entity and by operation (filter by entity, conversation ...)"""
        return ok(usage_stats.usage_stats(args))


@blp.route("/costs")
class UsageCosts(MethodView):
    @requires("viewer")
    @blp.arguments(UsageCostArgs, location="query")
    @blp.response(200, envelope(UsageCostSeriesSchema))
    def get(self, args):
        """Cost over time per UTC day, zero days included (default: the last 30 days; at most 366)"""
        return ok(usage_stats.cost_series(args))
