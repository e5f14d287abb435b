"""Feedback on agents' answers from platform users, and evaluation test cases made from rated answers
(the app contract's `POST /api/v1/messages/{id}/feedback` is in app_messages)."""
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.common import envelope, list_envelope, ok
from app.api.feedback import schemas as s
from app.auth import current_actor_id, requires
from app.services import feedback

blp = Blueprint("feedback", __name__, url_prefix="/api", description="Feedback on answers")


@blp.route("/conversations/<conversation_id>/messages/<message_id>/feedback")
class MessageFeedback(MethodView):
    @requires("viewer")
    @blp.arguments(s.FeedbackListArgs, location="query")
    @blp.response(200, list_envelope(s.FeedbackSchema))
    def get(self, args, conversation_id, message_id):
        """List the feedback given on an answer"""
        return feedback.list_feedback(args, message_id=message_id, conversation_id=conversation_id)

    @requires("operator")
    @blp.arguments(s.FeedbackWriteSchema)
    @blp.response(200, envelope(s.FeedbackSchema))
    def post(self, body, conversation_id, message_id):
        """Rate an answer up or down, with a comment; one per message per key (giving it again replaces it)"""
        return ok(feedback.payload(feedback.give_from_platform(conversation_id, message_id,
                                                               current_actor_id(), body)))


@blp.route("/feedback")
class FeedbackList(MethodView):
    @requires("viewer")
    @blp.arguments(s.FeedbackListArgs, location="query")
    @blp.response(200, list_envelope(s.FeedbackSchema))
    def get(self, args):
        """List feedback on answers (filter by rating, source, conversation_id, agent_id)"""
        return feedback.list_feedback(args)


@blp.route("/evaluations/<evaluation_id>/test-cases/from-conversations")
class CasesFromConversations(MethodView):
    @requires("operator")
    @blp.arguments(s.FromConversationsSchema)
    @blp.response(201, envelope(s.FromConversationsResultSchema))
    def post(self, body, evaluation_id):
        """Turn answered messages (by id, or by feedback rating) into test cases: the user's question as input,
        the reviewer's correction as expected output; messages that cannot be used are skipped with a reason"""
        return ok(feedback.cases_from_conversations(evaluation_id, body))
