"""The console: a server-rendered web workspace at `/` (the API stays under `/api`).

Pages call the services directly and apply the API's role rules (app.console.access); forms post to the
JSON API with the CSRF header (static/console.js). Nothing is fetched from outside: the CSP is
`default-src 'self'` on every page.
"""
from __future__ import annotations

from flask import Flask, request

CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "frame-ancestors 'none'; base-uri 'self'; form-action 'self'")


def register_console(app: Flask) -> None:
    # The page modules add their routes to the blueprint when imported.
    from app.console import (  # noqa: F401
        pages_admin,
        pages_agents,
        pages_auth,
        pages_evals,
        pages_home,
        pages_playground,
        pages_review,
        pages_sources,
        pages_swarms,
    )
    from app.console.blueprint import bp

    app.register_blueprint(bp)
    app.after_request(_security_headers)


def _security_headers(response):
    if not request.path.startswith("/api"):
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
    return response
