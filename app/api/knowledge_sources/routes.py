"""Knowledge sources and their indexes."""
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.common import MessageSchema, deleted, envelope, list_envelope, ok
from app.api.knowledge_sources.schemas import (
    IndexSchema,
    IndexSettingsSchema,
    SourceCreateSchema,
    SourceDeleteArgs,
    SourceListArgs,
    SourceSchema,
    SourceUpdateSchema,
)
from app.auth import current_role, requires
from app.services import indexes as index_service
from app.services import knowledge_sources as sources

blp = Blueprint("knowledge_sources", __name__, url_prefix="/api/knowledge-sources",
                description="Knowledge sources: uploads, folders, web sites and git repositories")


def _with_stats(items):
    stats = sources.stats([s.id for s in items])
    return [{**{c: getattr(s, c) for c in SourceSchema().fields if hasattr(s, c)}, **stats[s.id]} for s in items]


@blp.route("")
class Sources(MethodView):
    @requires("viewer")
    @blp.arguments(SourceListArgs, location="query")
    @blp.response(200, list_envelope(SourceSchema))
    def get(self, args):
        """List knowledge sources with document counts and any running sync"""
        page = sources.list_sources(args)
        page["data"] = _with_stats(page["data"])
        return page

    @requires("operator")
    @blp.arguments(SourceCreateSchema)
    @blp.response(201, envelope(SourceSchema))
    def post(self, body):
        """Create a knowledge source (and its default index); sync it with POST …/sync

        Directory sources and git sources with a local path need the admin role, and their folder must
        lie under the source roots (MAGNET_SOURCE_ROOTS); operators create upload, web and remote git
        sources.
        """
        return ok(_with_stats([sources.create_source(body, role=current_role())])[0])


@blp.route("/<source_id>")
class SourceById(MethodView):
    @requires("viewer")
    @blp.response(200, envelope(SourceSchema))
    def get(self, source_id):
        """Get a knowledge source with its counts and running sync"""
        return ok(_with_stats([sources.get_source(source_id)])[0])

    @requires("operator")
    @blp.arguments(SourceUpdateSchema)
    @blp.response(200, envelope(SourceSchema))
    def put(self, body, source_id):
        """Update name, description, configuration or schedule (the type is fixed)

        Changing a directory source, or a git source with a local path, needs the admin role.
        """
        return ok(_with_stats([sources.update_source(source_id, body, role=current_role())])[0])

    @requires("operator")
    @blp.arguments(SourceDeleteArgs, location="query")
    @blp.response(200, MessageSchema)
    @blp.alt_response(409, description="sync_in_progress, or in_use: RAG or retrieval tools search it")
    def delete(self, args, source_id):
        """Delete a source with its documents, chunks and vectors (409 while it syncs or tools use it;
        `?force=true` deletes those tools too)"""
        sources.delete_source(source_id, force=args["force"])
        return deleted("knowledge source")


@blp.route("/<source_id>/indexes")
class SourceIndexes(MethodView):
    @requires("viewer")
    @blp.response(200, list_envelope(IndexSchema))
    def get(self, source_id):
        """List a source's indexes (embedding model, chunker, chunk size, overlap) and their state"""
        found = sources.indexes(source_id)
        return {"success": True, "data": found, "pagination": {"page": 1, "limit": len(found), "total": len(found)}}

    @requires("operator")
    @blp.arguments(IndexSettingsSchema)
    @blp.response(202, envelope(IndexSchema))
    def post(self, body, source_id):
        """Add an index with other settings; it is built in the background from the stored documents"""
        index, created = index_service.find_or_create(sources.get_source(source_id), body)
        if created:
            index_service.request_build(index)
        return ok(index)


@blp.route("/<source_id>/indexes/<index_id>")
class SourceIndexById(MethodView):
    @requires("viewer")
    @blp.response(200, envelope(IndexSchema))
    def get(self, source_id, index_id):
        """Get one index and its build progress"""
        index = index_service.get_index(index_id)
        if index.source_id != source_id:
            from app.errors import NotFound

            raise NotFound(f"Index {index_id} does not belong to source {source_id}.")
        return ok(index)
