"""The console's blueprint: pages at `/`, its own templates and static files (vendored, no Node build)."""
from flask import Blueprint, render_template

from app.console.access import can, csrf_token, current_principal
from app.errors import MagnetError

bp = Blueprint("console", __name__, template_folder="templates", static_folder="static",
               static_url_path="/console/static")


@bp.context_processor
def _template_globals():
    return {"principal": current_principal(), "can": can, "csrf_token": csrf_token}


@bp.errorhandler(MagnetError)
def _domain_error(error: MagnetError):
    """A page about something missing (or refused) is an HTML page, not the API's JSON envelope."""
    return render_template("console/error.html", status=error.status, message=error.message), error.status


@bp.app_template_filter("when")
def _when(value) -> str:
    """A timestamp for people: UTC, to the second."""
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"
