"""One blueprint per resource; registered here in the order they appear in the OpenAPI document."""
from __future__ import annotations

from importlib import import_module

from flask import Flask, send_from_directory
from flask_smorest import Api

from app.auth import OPEN_ENDPOINTS

RESOURCES = (
    "health",
    "auth",
    "users",
    "workspace",
    "keys",
    "models",
    "prompt_templates",
    "agents",
    "integrations",
    "api_tools",
    "knowledge_sources",
    "documents",
    "syncs",
    "rag_tools",
    "retrieval_tools",
    "traces",
    "conversations",
    "evaluations",
    "dify",
    "app_messages",
    "usage",
    "analytics",
)


def register_blueprints(api: Api, app: Flask) -> None:
    for name in RESOURCES:
        module = import_module(f"app.api.{name}.routes")
        api.register_blueprint(module.blp)
    _serve_swagger_assets(app)
    from app.api.auth import magic_page

    magic_page.register(app)


def _serve_swagger_assets(app: Flask) -> None:
    import swagger_ui_bundle

    folder = swagger_ui_bundle.swagger_ui_path

    def swagger_ui_static(filename: str):
        return send_from_directory(folder, filename)

    app.add_url_rule("/api/docs/static/<path:filename>", "swagger_ui_static", swagger_ui_static)
    assert "swagger_ui_static" in OPEN_ENDPOINTS
