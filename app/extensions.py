"""Extensions, created unbound and attached to the app in `create_app` with `init_app`."""
from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy

from app.api.openapi import ErrorEnvelopeSchema, ErrorResponsesPlugin
from app.errors import http_error_response
from app.models.base import Base, UtcDateTime


class MagnetApi(Api):
    """flask-smorest's Api, answering every HTTP error with Magnet's error envelope, and documenting it."""

    ERROR_SCHEMA = ErrorEnvelopeSchema

    def handle_http_exception(self, error):
        return http_error_response(error)


db = SQLAlchemy(model_class=Base)


def _render_item(type_, obj, autogen_context):
    """Autogenerate writes our UtcDateTime as the plain column type, so migrations never import app code."""
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


# render_as_batch: SQLite cannot ALTER most things, batch mode copies the table instead.
migrate = Migrate(render_as_batch=True, compare_type=True, render_item=_render_item)
api = MagnetApi(spec_kwargs={"extra_plugins": [ErrorResponsesPlugin()]})
