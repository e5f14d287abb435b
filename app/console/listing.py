"""List arguments for console pages: the API's defaults, read leniently from the query string."""
from flask import request

from app.common.pagination import MAX_LIMIT, MAX_PAGE


def list_args(sort: str = "created_at", limit: int = 50, **extra) -> dict:
    """page/limit/sort/order as the services take them; a bad number falls back to the default."""
    def number(name: str, default: int, top: int) -> int:
        try:
            return min(max(int(request.args.get(name, default)), 1), top)
        except ValueError:
            return default

    return {"page": number("page", 1, MAX_PAGE), "limit": number("limit", limit, MAX_LIMIT),
            "sort": sort, "order": "desc", **extra}
