"""`POST /api/v1/messages/{id}/feedback`: an app rates its agent's answers, in the app contract (integration
key, bare JSON, `{"error": {"code", "message"}}` errors: the blueprint's handlers in routes.py)."""
from __future__ import annotations

from flask.views import MethodView

from app.api.app_messages.routes import blp
from app.api.app_messages.schemas import AppErrorSchema
from app.api.feedback.schemas import FeedbackSchema, FeedbackWriteSchema
from app.api.openapi import OWN_ERRORS
from app.auth import OPEN, presented_key, requires
from app.services import feedback


@blp.route("/messages/<message_id>/feedback")
class AppMessageFeedback(MethodView):
    @blp.doc(security=[{"IntegrationKey": []}], **OWN_ERRORS)
    @requires(OPEN)  # authenticated by the integration key (magnet_sk_…), not a platform key
    @blp.arguments(FeedbackWriteSchema, error_status_code=400)
    @blp.response(200, FeedbackSchema)
    @blp.alt_response(400, schema=AppErrorSchema, description="invalid_request (unknown message included)")
    @blp.alt_response(401, schema=AppErrorSchema, description="invalid_api_key")
    @blp.alt_response(403, schema=AppErrorSchema, description="integration_inactive")
    def post(self, body, message_id):
        """Rate an answer up or down with a comment; one per message per integration (again replaces it)"""
        return feedback.payload(feedback.give_from_app(presented_key(), message_id, body))
