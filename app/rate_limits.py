"""Rate limits (flask-limiter): every mutation under /api (POST, PUT, PATCH, DELETE) counts against one
budget per API key, `MAGNET_RATE_LIMIT_MUTATIONS` ("120/minute" by default; any "N/second|minute|hour|day"
string, several joined with ";").

Counters live in Redis when MAGNET_REDIS_URL is set, so every process and machine shares them; in memory
otherwise (one process). When Redis is down the limiter falls back to in-memory counting and logs it
(`swallow_errors`): a broken counter must not turn every write into an error.

`limiter` is exposed so that a route can add a limit of its own (`@limiter.limit("10/minute")`): one
instance per process, as route decorators need, whose storage is kept per app (`_PerAppLimiter`), so that
two apps in one process (the tests make many) never count in each other's store.
"""
from __future__ import annotations

import hashlib
import math
import time

from flask import Flask, current_app, has_app_context, request
from flask_limiter import Limiter, RateLimitExceeded, RequestLimit

from app.auth import presented_key
from app.errors import error_response

MUTATIONS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def rate_limit_key() -> str:
    """Who a request counts against: its API key (hashed: keys never sit in the counter store), else its
    address (requests without a key are refused anyway, but must not be free to hammer)."""
    key = presented_key()
    if key:
        return "key:" + hashlib.sha256(key.encode()).hexdigest()[:32]
    return "addr:" + (request.remote_addr or "unknown")


def _mutation_limit() -> str:
    return current_app.extensions["magnet.config"].rate_limit_mutations


def _not_a_mutation() -> bool:
    return request.method not in MUTATIONS or not request.path.startswith("/api")


def _breached(limit: RequestLimit):
    """429 in the error envelope, with Retry-After in whole seconds (at least 1)."""
    # reset_at is whole seconds (rounded up): never say more than the window itself.
    retry_after = min(max(1, math.ceil(limit.reset_at - time.time())), limit.limit.get_expiry())
    response, status = error_response(
        429, "rate_limited",
        f"Too many changes with this API key: the limit is {limit.limit}. Try again in {retry_after} s.",
        {"limit": str(limit.limit), "retry_after_seconds": retry_after})
    response.status_code = status
    response.headers["Retry-After"] = str(retry_after)
    return response


# What flask-limiter's init_app makes from one app's config (the counter store, its strategy, the
# in-memory fallback and whether the store is considered dead): kept in that app's extensions.
_PER_APP_STATE = ("_storage", "_limiter", "_storage_dead", "_fallback_storage", "_fallback_limiter",
                  "_Limiter__check_backend_count", "_Limiter__last_check_backend")


def _per_app(name: str) -> property:
    def state(limiter: Limiter) -> dict:
        unbound = limiter.__dict__.setdefault("_unbound_state", {})
        if not has_app_context():
            return unbound
        app_state = current_app.extensions.get("magnet.rate_limit_state")
        if app_state is None:  # defaults as Limiter.__init__ set them
            app_state = current_app.extensions["magnet.rate_limit_state"] = dict(unbound)
        return app_state

    return property(lambda self: state(self).get(name), lambda self, value: state(self).__setitem__(name, value))


class _PerAppLimiter(Limiter):
    """A Limiter whose storage belongs to the app in context (see _PER_APP_STATE)."""

    locals().update({name: _per_app(name) for name in _PER_APP_STATE})


limiter = _PerAppLimiter(
    key_func=rate_limit_key,
    application_limits=[_mutation_limit],
    application_limits_exempt_when=_not_a_mutation,
    on_breach=_breached,
    swallow_errors=True,
    in_memory_fallback_enabled=True,
    strategy="moving-window",
)


def init_app(app: Flask) -> None:
    config = app.extensions["magnet.config"]
    app.config["RATELIMIT_STORAGE_URI"] = config.redis_url or "memory://"
    if config.redis_url:
        timeout = config.redis_timeout_seconds
        app.config["RATELIMIT_STORAGE_OPTIONS"] = {"socket_connect_timeout": timeout, "socket_timeout": timeout}
    with app.app_context():  # the store it builds is this app's
        limiter.init_app(app)

    @app.errorhandler(RateLimitExceeded)
    def _rate_limited(error: RateLimitExceeded):
        # The envelope `_breached` made (the generic HTTP error handler would drop Retry-After).
        if error.response is not None:
            return error.response
        response, status = error_response(429, "rate_limited", "Too many changes with this API key.")
        response.headers["Retry-After"] = "60"
        return response, status
