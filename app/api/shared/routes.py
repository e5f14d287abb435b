"""Shared results, open to anyone holding a link (no API key): what a share link points to."""
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.common import envelope, ok
from app.api.openapi import ErrorEnvelopeSchema
from app.api.swarms.schemas import SharedSwarmSchema
from app.auth import OPEN, requires
from app.services import swarm_shares

blp = Blueprint("shared", __name__, url_prefix="/api/shared", description="Shared results (open)")


@blp.route("/swarms/<token>")
class SharedSwarm(MethodView):
    @requires(OPEN)
    @blp.response(200, envelope(SharedSwarmSchema))
    @blp.alt_response(410, schema=ErrorEnvelopeSchema,
                      description="share_expired or share_revoked: the link no longer works")
    def get(self, token):
        """A swarm's results through a share link: goal, synthesis, members' answers (no key needed)"""
        return ok(swarm_shares.open_share(token))
