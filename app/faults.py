"""Which shared service an exception says is down or frozen, so the client gets a clear 503 in the error
envelope, naming it, instead of a 500.

The shared services are the database, the vector store (a Chroma server) and the job queue (Redis). Their
client libraries raise their own connection and timeout errors; some callers wrap them, so the whole
chain of causes is looked at. Every call to them is bounded by a timeout (see app.config), so a frozen
service ends here too, within that bound, rather than holding the request.
"""
from __future__ import annotations

from app.errors import ServiceUnavailable

MESSAGES = {
    "database": "The database is unavailable; try again shortly.",
    "vector_store": "The vector store (Chroma) is unavailable; try again shortly.",
    "job_queue": "The job queue (Redis) is unavailable; try again shortly.",
}


def component_down(error: BaseException) -> str | None:
    """'database', 'vector_store' or 'job_queue' when `error` (or one of its causes) says that one is
    unreachable or did not answer in time; None for any other error."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        component = _component_of(error)
        if component:
            return component
        error = error.__cause__ or error.__context__
    return None


def _component_of(error: BaseException) -> str | None:
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from knowledge.types import StoreUnavailable

    if isinstance(error, StoreUnavailable):
        return "vector_store"
    if isinstance(error, (OperationalError, InterfaceError, PoolTimeout)) or (
        isinstance(error, DBAPIError) and error.connection_invalidated
    ):
        return "database"
    module = type(error).__module__
    if module.startswith("httpx") and _is_httpx_transport_error(error):
        return "vector_store"  # httpx is only Chroma's client here (outbound HTTP uses requests)
    if module.startswith("redis"):
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeout

        if isinstance(error, (RedisConnectionError, RedisTimeout)):
            return "job_queue"
    return None


def _is_httpx_transport_error(error: BaseException) -> bool:
    import httpx

    return isinstance(error, httpx.TransportError)


def unavailable(component: str, error: BaseException | None = None) -> ServiceUnavailable:
    """The domain error for a component that is down; the job queue has its own code. The library's own
    message (hosts, ports) goes to the log, not to the client."""
    code = "queue_unavailable" if component == "job_queue" else "service_unavailable"
    return ServiceUnavailable(MESSAGES[component], code=code, details={"component": component})
