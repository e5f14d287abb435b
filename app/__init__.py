"""The Magnet web service: `create_app(config)` builds a configured Flask app."""
from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

from sqlalchemy import event
from sqlalchemy.engine import Engine

from app.config import Config
from app.routing import MagnetFlask

try:
    __version__ = version("magnet")
except PackageNotFoundError:  # running from a checkout without `pip install -e .`
    __version__ = "0.0.0"


def create_app(config: Config | None = None, *, web_process: bool = False) -> MagnetFlask:
    """Build the app: configuration, extensions, blueprints, error handlers, auth.

    web_process: this process serves HTTP (wsgi.py, each `magnet serve` worker): on the embedded Chroma it
    must be the only one, and refuses to start otherwise (app.vectordb.hold_embedded_chroma).
    """
    from app import auth, crypto, rate_limits, request_guards
    from app.api import register_blueprints
    from app.common.queue import make_queue
    from app.console import register_console
    from app.errors import register_error_handlers
    from app.extensions import api, db, migrate
    from app.jobs import register_tasks
    from app.runtime.outbound_slots import OutboundSlots

    config = config or Config.from_env()
    config.secure_data_dir()
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    app = MagnetFlask(__name__)
    app.config.update(_flask_settings(config))
    app.extensions["magnet.config"] = config
    app.extensions["magnet.fernet"] = crypto.make_fernet(config.resolved_secret_key())
    app.extensions["magnet.outbound_slots"] = OutboundSlots(config.outbound_concurrency)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(config_root() / "migrations"))
    api.init_app(app)
    register_error_handlers(app)
    register_blueprints(api, app)
    register_console(app)
    auth.check_every_route_declares_a_role(app)
    register_tasks(app, make_queue(config))

    rate_limits.init_app(app)  # its check runs before the hooks below: a throttled key costs no lookup
    app.before_request(request_guards.limit_json_body)
    app.before_request(auth.authenticate)
    app.before_request(request_guards.refuse_unstorable_text)
    app.before_request(request_guards.refuse_undeclared_input)
    app.after_request(auth.refresh_cookies)
    if web_process:
        from app.vectordb import hold_embedded_chroma

        hold_embedded_chroma(app)
    return app


def config_root():
    from app.config import PROJECT_ROOT

    return PROJECT_ROOT


def _engine_options(config: Config) -> dict:
    """Bounded database calls: a server that is down or frozen fails the request (503) within the timeouts
    instead of holding it. pool_pre_ping replaces connections a restarted server dropped."""
    options: dict = {"pool_pre_ping": True}
    if config.sqlalchemy_url.startswith("postgresql"):
        options["pool_timeout"] = config.db_connect_timeout_seconds * 2
        options["connect_args"] = {
            "connect_timeout": max(1, round(config.db_connect_timeout_seconds)),
            "options": f"-c statement_timeout={round(config.db_statement_timeout_seconds * 1000)}",
            # Dead peers (a host gone, a cable cut) are noticed by TCP within about the connect timeout.
            "keepalives": 1,
            "keepalives_idle": max(1, round(config.db_connect_timeout_seconds)),
            "keepalives_interval": 1,
            "keepalives_count": 3,
        }
    return options


def _flask_settings(config: Config) -> dict:
    return {
        "SECRET_KEY": config.resolved_secret_key(),
        "TESTING": config.testing,
        "SQLALCHEMY_DATABASE_URI": config.sqlalchemy_url,
        "SQLALCHEMY_ENGINE_OPTIONS": _engine_options(config),
        "MAX_CONTENT_LENGTH": config.max_upload_bytes,
        "API_TITLE": "Magnet",
        "API_VERSION": __version__,
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "/docs",
        # Served from the swagger-ui-bundle package, so the docs work on an air-gapped server.
        "OPENAPI_SWAGGER_UI_URL": "/api/docs/static/",
        "API_SPEC_OPTIONS": {
            "info": {"description": "Self-hosted RAG and evaluation backend. See the README for conventions."},
            "security": [{"ApiKeyHeader": []}, {"BearerKey": []}],
            "components": {
                "securitySchemes": {
                    "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                    "BearerKey": {"type": "http", "scheme": "bearer"},
                    # POST /api/v1/messages only: an app integration's key, magnet_sk_…
                    "IntegrationKey": {"type": "http", "scheme": "bearer"},
                    # /api/v1 hand-off routes: a hand-off account's key (also accepted as x-api-key)
                    "HandoffKey": {"type": "http", "scheme": "bearer"},
                }
            },
        },
    }


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record):
    """SQLite: WAL for concurrent readers during writes, foreign keys on, and a busy timeout."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
