"""One page of a list query, in the list envelope: `{"success", "data", "pagination"}`.

Routes validate `page`, `limit` and `cursor` (app.api.common.list_args bounds them); services run the
query here. Two ways through a list:

* `page` + `limit`: OFFSET paging. Simple, but the database walks past every skipped row, so a deep page
  of a 400k-document source costs as much as reading them all, and rows inserted meanwhile shift pages
  (a row is skipped or shown twice).
* `cursor`: keyset paging. Every page answers `pagination.next_cursor` (null on the last page), an opaque
  token naming the last row shown (its sort value and id); passing it back asks for the rows after that
  row in the same order, with `WHERE (sort, id) < (value, id)`, an index range scan whose cost does not
  depend on how deep the page is. Inserts never shift it. A cursor wins over `page`.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
from datetime import UTC, datetime

from sqlalchemy import Select, func, select, tuple_

from app.errors import ValidationFailed
from app.extensions import db

MAX_LIMIT = 100
# The largest page a list accepts: (page - 1) * limit must fit the 64-bit OFFSET every database takes.
MAX_PAGE = 1_000_000
MAX_CURSOR_LENGTH = 2000


def paginate(query: Select, model, args: dict) -> dict:
    """Run a list query with the envelope's pagination; ties on the sort column break by id."""
    column = getattr(model, args["sort"])
    ascending = args["order"] == "asc"
    direction = column.asc() if ascending else column.desc()
    tiebreak = model.id.asc() if ascending else model.id.desc()
    # Counted over the ids alone: an index-only count, never a read of wide columns (a document's text).
    counted = query.order_by(None).with_only_columns(model.id, maintain_column_froms=True)
    total = db.session.execute(select(func.count()).select_from(counted.subquery())).scalar_one()
    page, limit = args["page"], args["limit"]
    ordered = query.order_by(direction, tiebreak)
    if args.get("cursor"):
        page, value, last_id = decode_cursor(args["cursor"], args, column)
        after = tuple_(column, model.id) > tuple_(value, last_id) if ascending else \
            tuple_(column, model.id) < tuple_(value, last_id)
        ordered = ordered.where(after)
    else:
        ordered = ordered.offset((page - 1) * limit)
    # One row more than the page tells whether a next page exists without a second count.
    rows = list(db.session.execute(ordered.limit(limit + 1)).scalars())
    more, rows = len(rows) > limit, rows[:limit]
    next_cursor = None
    if more and not column.nullable:
        last = rows[-1]
        next_cursor = encode_cursor(page + 1, args, getattr(last, args["sort"]), last.id)
    return {
        "success": True,
        "data": rows,
        "pagination": {"page": page, "limit": limit, "total": total, "next_cursor": next_cursor},
    }


def encode_cursor(page: int, args: dict, value, row_id: str) -> str:
    """The opaque token for the rows after (value, row_id) in this sort and order; it carries the page
    number it leads to, so the envelope's `page` stays meaningful."""
    if isinstance(value, datetime):
        value = value.isoformat()
    raw = json.dumps({"p": page, "s": args["sort"], "o": args["order"], "v": value, "i": row_id},
                     separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, args: dict, column) -> tuple[int, object, str]:
    """(page, sort value, id) of a cursor; a 422 for one that is malformed or made for another sort."""
    def bad(why: str) -> ValidationFailed:
        return ValidationFailed(f"Invalid cursor: {why}. Pass back a next_cursor exactly as a list returned it.",
                                details={"fields": {"cursor": [why]}})

    if column.nullable:
        raise bad(f"sort {args['sort']} can be empty and cannot be paged by cursor; use page")
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        page, sort, order, value, row_id = data["p"], data["s"], data["o"], data["v"], data["i"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise bad("not a cursor") from None
    if (sort, order) != (args["sort"], args["order"]):
        raise bad(f"it was made for sort={sort}&order={order}")
    if not isinstance(page, int) or isinstance(page, bool) or not 1 < page <= MAX_PAGE + 1:
        raise bad("not a cursor")
    if not _text(row_id):
        raise bad("not a cursor")
    kind = getattr(column.type, "impl", column.type).python_type  # a TypeDecorator says `object`
    if kind is datetime:
        try:
            value = datetime.fromisoformat(value)
            if value.tzinfo is None:  # the columns hold aware UTC times (app.models.base.UtcDateTime)
                raise ValueError("naive")
            value = value.astimezone(UTC)
        except (TypeError, ValueError, OverflowError):
            raise bad("not a cursor") from None
    elif kind is str:
        if not _text(value):
            raise bad("not a cursor")
    elif not _number(value):
        raise bad("not a cursor")
    return page, value, row_id


def _number(value) -> bool:
    # Beyond 64 bits or not finite, a database refuses the parameter (a 500) instead of comparing it.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return -2**63 <= value < 2**63 and math.isfinite(value)


def _text(value) -> bool:
    # PostgreSQL refuses NUL in a text parameter (a 500); no stored id or name holds one.
    return isinstance(value, str) and "\x00" not in value
