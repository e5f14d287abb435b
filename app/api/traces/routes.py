"""Traces: what each stage of a query did, with inputs, outputs and timings."""
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from app.api.common import UtcDateTime, envelope, ok
from app.auth import requires
from app.errors import NotFound
from app.extensions import db
from app.models import Trace

blp = Blueprint("traces", __name__, url_prefix="/api/traces", description="Query traces")


class TraceSchema(Schema):
    id = fields.String(required=True)
    entity_type = fields.String(required=True)
    entity_id = fields.String(required=True)
    query = fields.String(required=True)
    spans = fields.List(fields.Dict(), required=True)
    total_ms = fields.Float(required=True)
    created_at = UtcDateTime(required=True)


@blp.route("/<trace_id>")
class TraceById(MethodView):
    @requires("viewer")
    @blp.response(200, envelope(TraceSchema))
    def get(self, trace_id):
        """Get a trace: each stage's inputs, outputs and timing"""
        trace = db.session.get(Trace, trace_id)
        if trace is None:
            raise NotFound(f"Trace {trace_id} does not exist.")
        return ok(trace)
