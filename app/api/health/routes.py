"""Health (open, for load balancers) and status (viewer, for operators)."""
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.common import envelope, ok
from app.api.health.schemas import HealthSchema, StatusSchema
from app.auth import OPEN, requires
from app.services import health

blp = Blueprint("health", __name__, url_prefix="/api", description="Service health and status")


@blp.route("/health")
class Health(MethodView):
    @requires(OPEN)
    @blp.response(200, envelope(HealthSchema))
    @blp.alt_response(503, schema=envelope(HealthSchema), description="A dependency is down")
    def get(self):
        """Check the database, the vector database and the job queue for real (503 when one is down), and count
        the live workers ('degraded' when runs are queued and none is alive)"""
        report = health.check_health()
        return ok(report), (503 if report["status"] == "unavailable" else 200)


@blp.route("/status")
class Status(MethodView):
    @requires("viewer")
    @blp.response(200, envelope(StatusSchema))
    def get(self):
        """Counts of each resource, job queue state and component versions"""
        return ok(health.status())
