"""Swarm sessions: several agents working one goal in parallel, and a synthesis of their work."""
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.common import MessageSchema, deleted, envelope, list_envelope, ok
from app.api.swarms import schemas as s
from app.auth import current_api_key_id, requires
from app.services import swarm_shares, swarms

blp = Blueprint("swarms", __name__, url_prefix="/api/swarms", description="Swarm sessions")


@blp.route("")
class Swarms(MethodView):
    @requires("viewer")
    @blp.arguments(s.SwarmListArgs, location="query")
    @blp.response(200, list_envelope(s.SwarmSchema))
    def get(self, args):
        """List swarms (filter by status, or by an agent that took part)"""
        return swarms.list_swarms(args)

    @requires("operator")
    @blp.arguments(s.SwarmCreateSchema)
    @blp.response(202, envelope(s.SwarmSchema))
    def post(self, body):
        """Start a swarm in the background (202): its members work the goal in parallel; follow it at
        /api/swarms/{swarm_id}"""
        return ok(swarms.payload(swarms.create_swarm(body, api_key_id=current_api_key_id())))


@blp.route("/<swarm_id>")
class SwarmById(MethodView):
    @requires("viewer")
    @blp.response(200, envelope(s.SwarmSchema))
    def get(self, swarm_id):
        """A swarm: status, progress, each member's status, result, error and cost, and the synthesis"""
        return ok(swarms.payload(swarms.get_swarm(swarm_id)))

    @requires("operator")
    @blp.response(200, MessageSchema)
    def delete(self, swarm_id):
        """Delete a finished swarm with its members' conversations and share links (409 while active)"""
        swarms.delete_swarm(swarm_id)
        return deleted("swarm")


@blp.route("/<swarm_id>/cancel")
class CancelSwarm(MethodView):
    @requires("operator")
    @blp.response(202, envelope(s.SwarmSchema))
    def post(self, swarm_id):
        """Cancel a swarm: nothing further starts; member turns already running end and are kept"""
        return ok(swarms.payload(swarms.cancel_swarm(swarm_id)))


@blp.route("/<swarm_id>/share")
class Shares(MethodView):
    @requires("viewer")
    @blp.response(200, s.ShareListEnvelopeSchema)
    def get(self, swarm_id):
        """List a swarm's share links (their tokens are shown only when made)"""
        return ok([swarm_shares.share_payload(share) for share in swarm_shares.list_shares(swarm_id)])

    @requires("operator")
    @blp.arguments(s.ShareCreateSchema, required=False)
    @blp.response(201, envelope(s.ShareSchema))
    def post(self, body, swarm_id):
        """Make a read-only link to the swarm's results, signed and expiring (`expires_in` seconds)"""
        expires_in = (body or {}).get("expires_in", swarm_shares.DEFAULT_EXPIRES_IN)
        share, token = swarm_shares.create_share(swarm_id, expires_in, api_key_id=current_api_key_id())
        return ok(swarm_shares.share_payload(share, token))


@blp.route("/<swarm_id>/share/<share_id>")
class ShareById(MethodView):
    @requires("operator")
    @blp.response(200, envelope(s.ShareSchema))
    def delete(self, swarm_id, share_id):
        """Revoke a share link: it stops working at once, on every node"""
        return ok(swarm_shares.share_payload(swarm_shares.revoke_share(swarm_id, share_id)))
