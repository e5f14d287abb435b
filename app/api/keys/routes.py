"""API keys (admin only): create (the key is returned once), list, revoke."""
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.common import MessageSchema, envelope, list_envelope, ok
from app.api.keys.schemas import ApiKeyCreateSchema, ApiKeyListArgs, ApiKeySchema, CreatedApiKeySchema
from app.auth import requires
from app.services import api_keys

blp = Blueprint("keys", __name__, url_prefix="/api/keys", description="API keys and roles")


@blp.route("")
class Keys(MethodView):
    @requires("admin")
    @blp.arguments(ApiKeyListArgs, location="query")
    @blp.response(200, list_envelope(ApiKeySchema))
    def get(self, args):
        """List API keys (prefix, role, last use; never the key)"""
        return api_keys.list_keys(args)

    @requires("admin")
    @blp.arguments(ApiKeyCreateSchema)
    @blp.response(201, envelope(CreatedApiKeySchema))
    def post(self, body):
        """Create an API key; the response is the only time the key is shown"""
        record, key = api_keys.create_key(body["name"], body["role"])
        return ok({**api_keys.as_dict(record), "key": key})


@blp.route("/<key_id>")
class KeyById(MethodView):
    @requires("admin")
    @blp.response(200, envelope(ApiKeySchema))
    def get(self, key_id):
        """Get one API key's metadata"""
        return ok(api_keys.get_key(key_id))

    @requires("admin")
    @blp.response(200, MessageSchema)
    def delete(self, key_id):
        """Revoke an API key (it stops working at once; the record stays for the audit trail)"""
        api_keys.revoke_key(key_id)
        return {"success": True, "message": "API key revoked"}
