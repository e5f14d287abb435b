"""Sync runs of a knowledge source: start (202), follow, cancel."""
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from app.api.common import envelope, list_envelope, ok
from app.api.knowledge_sources.schemas import SyncListArgs, SyncRunSchema
from app.auth import requires
from app.common.pagination import paginate
from app.models import SyncRun
from app.services import knowledge_sources as sources
from app.services import sync

blp = Blueprint("syncs", __name__, url_prefix="/api/knowledge-sources", description="Sync runs")


@blp.route("/<source_id>/sync")
class StartSync(MethodView):
    @requires("operator")
    @blp.response(202, envelope(SyncRunSchema))
    def post(self, source_id):
        """Start a sync; 409 `sync_in_progress` (with the running run's id) if one is queued or running"""
        return ok(sync.start_sync(source_id))


@blp.route("/<source_id>/syncs")
class Syncs(MethodView):
    @requires("viewer")
    @blp.arguments(SyncListArgs, location="query")
    @blp.response(200, list_envelope(SyncRunSchema))
    def get(self, args, source_id):
        """List a source's sync runs, newest first"""
        sources.get_source(source_id)
        return paginate(select(SyncRun).where(SyncRun.source_id == source_id), SyncRun, args)


@blp.route("/<source_id>/syncs/<run_id>")
class SyncById(MethodView):
    @requires("viewer")
    @blp.response(200, envelope(SyncRunSchema))
    def get(self, source_id, run_id):
        """A sync run: status, progress, counts (added, updated, unchanged, deleted, failed) and errors"""
        return ok(sync.get_run(source_id, run_id))


@blp.route("/<source_id>/syncs/<run_id>/cancel")
class CancelSync(MethodView):
    @requires("operator")
    @blp.response(202, envelope(SyncRunSchema))
    def post(self, source_id, run_id):
        """Cancel a queued or running sync; it stops before its next document"""
        return ok(sync.cancel_sync(source_id, run_id))
