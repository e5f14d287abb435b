"""App integrations (admin only): an application's key to one agent for `POST /api/v1/messages`."""
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.common import MessageSchema, deleted, envelope, list_envelope, ok
from app.api.integrations.schemas import (
    IntegrationListArgs,
    IntegrationSchema,
    IntegrationUpdateSchema,
    IntegrationWithKeySchema,
    IntegrationWriteSchema,
)
from app.auth import requires
from app.services import integrations

blp = Blueprint(
    "integrations", __name__, url_prefix="/api/integrations", description="App integrations and their keys"
)


@blp.route("")
class Integrations(MethodView):
    @requires("admin")
    @blp.arguments(IntegrationListArgs, location="query")
    @blp.response(200, list_envelope(IntegrationSchema))
    def get(self, args):
        """List app integrations (filter by agent or active state; never the key)"""
        return integrations.list_integrations(args)

    @requires("admin")
    @blp.arguments(IntegrationWriteSchema)
    @blp.response(201, envelope(IntegrationWithKeySchema))
    def post(self, body):
        """Create an app integration for an agent; the response is the only time the key is shown"""
        integration, key = integrations.create_integration(body)
        return ok({**integrations.as_dict(integration, spent=0.0), "key": key})


@blp.route("/<integration_id>")
class IntegrationById(MethodView):
    @requires("admin")
    @blp.response(200, envelope(IntegrationSchema))
    def get(self, integration_id):
        """Get one app integration, with what it has spent today"""
        return ok(integrations.as_dict(integrations.get_integration(integration_id)))

    @requires("admin")
    @blp.arguments(IntegrationUpdateSchema)
    @blp.response(200, envelope(IntegrationSchema))
    def put(self, body, integration_id):
        """Update an app integration (name, agent, active state, daily limit); only the fields sent change"""
        return ok(integrations.as_dict(integrations.update_integration(integration_id, body)))

    @requires("admin")
    @blp.response(200, MessageSchema)
    def delete(self, integration_id):
        """Delete an app integration; its key stops working at once"""
        integrations.delete_integration(integration_id)
        return deleted("integration")


@blp.route("/<integration_id>/rotate-key")
class IntegrationKeyRotation(MethodView):
    @requires("admin")
    @blp.response(200, envelope(IntegrationWithKeySchema))
    def post(self, integration_id):
        """Replace an app integration's key: the new key is shown this once and the old one stops working"""
        integration, key = integrations.rotate_key(integration_id)
        return ok({**integrations.as_dict(integration), "key": key})
