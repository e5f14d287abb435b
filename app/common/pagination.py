"""One page of a list query, in the list envelope: `{"success", "data", "pagination"}`.

Routes validate `page` and `limit` (app.api.common.list_args bounds both); services run the query here.
"""
from __future__ import annotations

from sqlalchemy import Select, func, select

from app.extensions import db

MAX_LIMIT = 100
# The largest page a list accepts: (page - 1) * limit must fit the 64-bit OFFSET every database takes.
MAX_PAGE = 1_000_000


def paginate(query: Select, model, args: dict) -> dict:
    """Run a list query with the envelope's pagination; ties on the sort column break by id."""
    column = getattr(model, args["sort"])
    direction = column.asc() if args["order"] == "asc" else column.desc()
    tiebreak = model.id.asc() if args["order"] == "asc" else model.id.desc()
    total = db.session.execute(select(func.count()).select_from(query.order_by(None).subquery())).scalar_one()
    page, limit = args["page"], args["limit"]
    rows = db.session.execute(query.order_by(direction, tiebreak).offset((page - 1) * limit).limit(limit))
    return {
        "success": True,
        "data": list(rows.scalars()),
        "pagination": {"page": page, "limit": limit, "total": total},
    }
