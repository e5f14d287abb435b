"""Chat, embedding and rerank models of any provider; keys are write-only and encrypted at rest."""
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.common import MessageSchema, deleted, envelope, list_envelope, ok
from app.api.models.schemas import ModelListArgs, ModelSchema, ModelUpdateSchema, ModelWriteSchema
from app.auth import requires
from app.services import llm_models

blp = Blueprint("models", __name__, url_prefix="/api/models", description="Models and their pricing")


@blp.route("")
class Models(MethodView):
    @requires("viewer")
    @blp.arguments(ModelListArgs, location="query")
    @blp.response(200, list_envelope(ModelSchema))
    def get(self, args):
        """List models (filter by kind or provider)"""
        return llm_models.list_models(args)

    @requires("admin")
    @blp.arguments(ModelWriteSchema)
    @blp.response(201, envelope(ModelSchema))
    def post(self, body):
        """Add a model; its api_key is encrypted and never returned (admin: it holds a secret)"""
        return ok(llm_models.create_model(body))


@blp.route("/<model_id>")
class ModelById(MethodView):
    @requires("viewer")
    @blp.response(200, envelope(ModelSchema))
    def get(self, model_id):
        """Get one model"""
        return ok(llm_models.get_model(model_id))

    @requires("admin")
    @blp.arguments(ModelUpdateSchema)
    @blp.response(200, envelope(ModelSchema))
    def put(self, body, model_id):
        """Update a model; only the fields sent change"""
        return ok(llm_models.update_model(model_id, body))

    @requires("admin")
    @blp.response(200, MessageSchema)
    def delete(self, model_id):
        """Delete a model (refused while agents use it, and for built-in models)"""
        llm_models.delete_model(model_id)
        return deleted("model")
