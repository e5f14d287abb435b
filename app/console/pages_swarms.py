"""Swarms: the list (status, progress, cost) and a swarm's page (members with their status, result and
error, the synthesis, cancel, and a read-only share link), from app.services.swarms like /api/swarms."""
from flask import render_template, request

from app.console.access import page
from app.console.blueprint import bp
from app.console.listing import list_args
from app.models import SWARM_STATUSES
from app.models.swarm import ACTIVE_SWARM_STATUSES
from app.services import swarm_shares, swarms


@bp.get("/swarms", endpoint="swarms")
@page("viewer")
def swarms_page():
    """Every swarm, newest first (filter by status)."""
    status = request.args.get("status") if request.args.get("status") in SWARM_STATUSES else None
    listing = swarms.list_swarms(list_args(status=status))
    return render_template("console/swarms.html", section="Swarms", listing=listing, statuses=SWARM_STATUSES,
                           status=status)


@bp.get("/swarms/<swarm_id>", endpoint="swarm")
@page("viewer")
def swarm(swarm_id):
    """One swarm: progress, each member's work, the synthesis, its share links; cancel and share (operators)."""
    found = swarms.get_swarm(swarm_id)
    shares = [swarm_shares.share_payload(s) for s in swarm_shares.list_shares(swarm_id)]
    return render_template("console/swarm.html", section="Swarms", swarm=swarms.payload(found), shares=shares,
                           active=found.status in ACTIVE_SWARM_STATUSES)
