"""The workspace: name, description, goals, mission, logo and open sign-ups. Admins write; everyone
signed in reads."""
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.common import envelope, ok
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
