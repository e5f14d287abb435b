"""Analytics of agent conversations: volumes, tool usage, latency percentiles, failure rates and cost."""
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.analytics.schemas import AnalyticsConversationArgs, ConversationAnalyticsSchema
from app.api.common import envelope, ok
from app.auth import requires
from app.services import analytics

blp = Blueprint("analytics", __name__, url_prefix="/api/analytics", description="Conversation analytics")


@blp.route("/conversations")
class ConversationAnalytics(MethodView):
    @requires("viewer")
    @blp.arguments(AnalyticsConversationArgs, location="query")
    @blp.response(200, envelope(ConversationAnalyticsSchema))
    def get(self, args):
        """Conversation analytics over a period (optionally one agent's): messages, tools, latency, rates, cost"""
        return ok(analytics.conversation_analytics(args))
