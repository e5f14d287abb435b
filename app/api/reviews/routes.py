"""Human review of evaluation runs: reviewers grade cases; the run reports a human metric and how far
each LLM judge agrees with the humans."""
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.common import envelope, list_envelope, ok
from app.api.reviews import schemas as s
from app.auth import current_actor_id, requires
from app.services import eval_runs, reviews

blp = Blueprint("reviews", __name__, url_prefix="/api", description="Human review of evaluation runs")


def _reviewer() -> str:
    return current_actor_id() or "anonymous"


@blp.route("/evaluations/<evaluation_id>/runs/<run_id>/reviews")
class RunReviews(MethodView):
    @requires("viewer")
    @blp.response(200, envelope(s.ReviewSummarySchema))
    def get(self, evaluation_id, run_id):
        """A run's human review: items by status, the human metric and judge-human agreement"""
        run = eval_runs.get_run(run_id, evaluation_id)
        return ok(reviews.run_summary(run) or {"items": {}, "human": {}, "agreement": {}})

    @requires("operator")
    @blp.arguments(s.ReviewCreateSchema)
    @blp.response(201, envelope(s.ReviewCreatedSchema))
    def post(self, body, evaluation_id, run_id):
        """Put cases of a finished run under human review: all, the failing ones, or a seeded sample (idempotent)"""
        return ok(reviews.create_reviews(evaluation_id, run_id, body))


@blp.route("/review/items")
class ReviewItems(MethodView):
    @requires("reviewer")
    @blp.arguments(s.ReviewItemListArgs, location="query")
    @blp.response(200, list_envelope(s.CaseReviewItemSchema))
    def get(self, args):
        """List review items (filter by evaluation_id, run_id, status)"""
        return reviews.list_items(args)


@blp.route("/review/items/<item_id>")
class ReviewItemById(MethodView):
    @requires("reviewer")
    @blp.response(200, envelope(s.CaseReviewItemDetailSchema))
    def get(self, item_id):
        """A review item with what the reviewer judges: input, expectations, answer, citations, passages, grades"""
        return ok(reviews.item_detail(item_id))


@blp.route("/review/items/<item_id>/claim")
class ClaimItem(MethodView):
    @requires("reviewer")
    @blp.response(200, envelope(s.CaseReviewItemSchema))
    @blp.alt_response(409, description="Claimed by another reviewer, or already graded")
    def post(self, item_id):
        """Claim a pending review item (atomic: of concurrent claims one wins, the others get 409)"""
        return ok(reviews.item_payload(reviews.claim(item_id, _reviewer())))


@blp.route("/review/items/<item_id>/release")
class ReleaseItem(MethodView):
    @requires("reviewer")
    @blp.response(200, envelope(s.CaseReviewItemSchema))
    @blp.alt_response(409, description="Not claimed by you")
    def post(self, item_id):
        """Give a claimed review item back to the queue"""
        return ok(reviews.item_payload(reviews.release(item_id, _reviewer())))


@blp.route("/review/items/<item_id>/grade")
class GradeItem(MethodView):
    @requires("reviewer")
    @blp.arguments(s.GradeSchema)
    @blp.response(200, envelope(s.CaseReviewItemDetailSchema))
    @blp.alt_response(409, description="Claimed by another reviewer")
    def post(self, body, item_id):
        """Grade a case (verdict pass/fail and/or score 1-5, comment); a re-grade replaces it, history kept"""
        reviews.grade(item_id, _reviewer(), body)
        return ok(reviews.item_detail(item_id))
