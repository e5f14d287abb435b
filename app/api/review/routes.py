"""Human review (platform API): the reviewers' queue of hand-off requests, and hand-off invitations.

Routes here declare the `reviewer` role: reviewer, operator and admin keys reach them; a reviewer key
reaches nothing else (app.auth).
"""
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.common import envelope, list_envelope, ok
from app.api.review.schemas import (
    HandoffInvitationCreateSchema,
    HandoffInvitationSchema,
    QueueItemSchema,
    ReviewCompleteSchema,
    ReviewMessageCreateSchema,
    ReviewMessageListEnvelope,
    ReviewMessageSchema,
    ReviewQueueArgs,
    ReviewTaskSchema,
)
from app.auth import current_actor_id, current_role, requires
from app.services import handoff_accounts, handoff_review
from app.services.handoff_requests import messages_of

blp = Blueprint("review", __name__, url_prefix="/api", description="Human review: the reviewers' queue")


@blp.route("/review/tasks")
class ReviewQueue(MethodView):
    @requires("reviewer")
    @blp.arguments(ReviewQueueArgs, location="query")
    @blp.response(200, list_envelope(QueueItemSchema))
    def get(self, args):
        """The review queue, newest first: every kind of review item (`kind`), filtered by status and overdue"""
        return handoff_review.queue(args)


@blp.route("/review/tasks/<task_id>")
class ReviewTask(MethodView):
    @requires("reviewer")
    @blp.response(200, envelope(ReviewTaskSchema))
    def get(self, task_id):
        """One task with its instructions, messages and events (who did what, when)"""
        return ok(handoff_review.task_detail(handoff_review.get_task(task_id)))


@blp.route("/review/tasks/<task_id>/claim")
class ClaimTask(MethodView):
    @requires("reviewer")
    @blp.response(200, envelope(ReviewTaskSchema))
    def post(self, task_id):
        """Claim a PENDING task (-> IN_PROGRESS): one reviewer at a time, 409 if someone has it"""
        return ok(handoff_review.task_detail(handoff_review.claim(task_id, current_actor_id())))


@blp.route("/review/tasks/<task_id>/release")
class ReleaseTask(MethodView):
    @requires("reviewer")
    @blp.response(200, envelope(ReviewTaskSchema))
    def post(self, task_id):
        """Give a claimed task back to the queue (-> PENDING); admins may release anyone's"""
        task = handoff_review.release(task_id, current_actor_id(), force=current_role() == "admin")
        return ok(handoff_review.task_detail(task))


@blp.route("/review/tasks/<task_id>/complete")
class CompleteTask(MethodView):
    @requires("reviewer")
    @blp.arguments(ReviewCompleteSchema)
    @blp.response(200, envelope(ReviewTaskSchema))
    def post(self, body, task_id):
        """Complete a task you claimed with its result (-> COMPLETED); the requester is notified"""
        task = handoff_review.complete(task_id, current_actor_id(), body["result"])
        return ok(handoff_review.task_detail(task))


@blp.route("/review/tasks/<task_id>/messages")
class TaskMessages(MethodView):
    @requires("reviewer")
    @blp.response(200, ReviewMessageListEnvelope)
    def get(self, task_id):
        """The messages on a task, both directions, oldest first"""
        return ok(messages_of(handoff_review.get_task(task_id).id))

    @requires("reviewer")
    @blp.arguments(ReviewMessageCreateSchema)
    @blp.response(201, envelope(ReviewMessageSchema))
    def post(self, body, task_id):
        """Send a message to the requester (it sees it in GET /api/v1/conversation)"""
        return ok(handoff_review.post_message(task_id, current_actor_id(), body["content"]))


@blp.route("/handoff/invitations")
class Invitations(MethodView):
    @requires("admin")
    @blp.arguments(HandoffInvitationCreateSchema)
    @blp.response(201, envelope(HandoffInvitationSchema))
    def post(self, body):
        """Create a one-use invitation to register a hand-off account (the token is shown once)"""
        return ok(handoff_accounts.create_invitation(body.get("note"), body["expires_in_hours"],
                                                     current_actor_id()))
