"""The workspace: name, description, goals, mission, logo and open sign-ups. Admins write; everyone
signed in reads."""
from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.common import envelope, ok
from app.api.users.schemas import IMAGE_RESPONSE, ImageUploadSchema, image_response
from app.api.workspace.schemas import WorkspaceSchema, WorkspaceUpdateSchema
from app.auth import requires
from app.services import workspace

blp = Blueprint("workspace", __name__, url_prefix="/api/workspace", description="The workspace's settings")


@blp.route("")
class Workspace(MethodView):
    @requires("viewer")
    @blp.response(200, envelope(WorkspaceSchema))
    def get(self):
        """The workspace's name, description, goals, mission and whether sign-ups are open"""
        return ok(workspace.get_workspace())

    @requires("admin")
    @blp.arguments(WorkspaceUpdateSchema)
    @blp.response(200, envelope(WorkspaceSchema))
    def put(self, body):
        """Change the workspace's settings; only the fields sent change"""
        return ok(workspace.update_workspace(body))


@blp.route("/logo")
class Logo(MethodView):
    @requires("viewer")
    @blp.response(200, IMAGE_RESPONSE, content_type="image/webp")
    def get(self):
        """The workspace's logo (WebP)"""
        return image_response(workspace.logo())

    @requires("admin")
    @blp.arguments(ImageUploadSchema, location="files")
    @blp.response(200, envelope(WorkspaceSchema))
    @blp.alt_response(413, description="The image is over the size limit")
    @blp.alt_response(415, description="The file is not an image Magnet reads")
    def put(self, files):
        """Upload the workspace's logo (multipart `file`): images only, size-limited, re-encoded"""
        limit = current_app.extensions["magnet.config"].auth.max_image_bytes
        return ok(workspace.set_logo(files["file"].read(limit + 1), limit))
