"""Users (admin): list, change role (workspace aliases accepted), deactivate. Everyone signed in: their
own preferences and avatar, and anyone's avatar."""
from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.common import envelope, list_envelope, ok
from app.api.users.schemas import (
    IMAGE_RESPONSE,
    ImageUploadSchema,
    PreferencesSchema,
    PreferencesWriteSchema,
    UserListArgs,
    UserSchema,
    UserUpdateSchema,
    image_response,
)
from app.auth import current_principal, requires
from app.errors import Conflict
from app.services import users

blp = Blueprint("users", __name__, url_prefix="/api/users", description="Users, roles and preferences")


def me():
    principal = current_principal()
    if principal is None or principal.user_id is None:
        raise Conflict("This needs a signed-in user; an API key has no account.", code="not_a_user")
    return users.get_user(principal.user_id)


@blp.route("")
class Users(MethodView):
    @requires("admin")
    @blp.arguments(UserListArgs, location="query")
    @blp.response(200, list_envelope(UserSchema))
    def get(self, args):
        """List users (filter by role or active)"""
        return users.list_users(args)


@blp.route("/me/preferences")
class MyPreferences(MethodView):
    @requires("viewer")
    @blp.response(200, envelope(PreferencesSchema))
    @blp.alt_response(409, description="The caller is an API key, which has no preferences")
    def get(self):
        """Your preferences (a JSON object the console keeps for you)"""
        return ok({"preferences": me().preferences or {}})

    @requires("viewer")
    @blp.arguments(PreferencesWriteSchema)
    @blp.response(200, envelope(PreferencesSchema))
    @blp.alt_response(409, description="The caller is an API key, which has no preferences")
    @blp.alt_response(413, description="The preferences are over the size limit")
    def put(self, body):
        """Replace your preferences (size-limited)"""
        limit = current_app.extensions["magnet.config"].auth.max_preferences_bytes
        return ok({"preferences": users.set_preferences(me(), body["preferences"], limit)})


@blp.route("/me/avatar")
class MyAvatar(MethodView):
    @requires("viewer")
    @blp.arguments(ImageUploadSchema, location="files")
    @blp.response(200, envelope(UserSchema))
    @blp.alt_response(409, description="The caller is an API key, which has no avatar")
    @blp.alt_response(413, description="The image is over the size limit")
    @blp.alt_response(415, description="The file is not an image Magnet reads")
    def put(self, files):
        """Upload your avatar (multipart `file`): images only, size-limited, re-encoded, EXIF stripped"""
        limit = current_app.extensions["magnet.config"].auth.max_image_bytes
        return ok(users.set_avatar(me(), files["file"].read(limit + 1), limit))


@blp.route("/<user_id>/avatar")
class Avatar(MethodView):
    @requires("viewer")
    @blp.response(200, IMAGE_RESPONSE, content_type="image/webp")
    def get(self, user_id):
        """A user's avatar (WebP)"""
        return image_response(users.avatar(user_id))


@blp.route("/<user_id>")
class UserById(MethodView):
    @requires("admin")
    @blp.response(200, envelope(UserSchema))
    def get(self, user_id):
        """Get one user"""
        return ok(users.get_user(user_id))

    @requires("admin")
    @blp.arguments(UserUpdateSchema)
    @blp.response(200, envelope(UserSchema))
    @blp.alt_response(409, description="The change would leave no active admin")
    def put(self, body, user_id):
        """Change a user's role (guest/employee accepted), name or active state; deactivation ends their
        sessions at once"""
        return ok(users.update_user(user_id, body))
