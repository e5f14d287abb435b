"""The reviewers' queue: hand-off requests and evaluation review items (GET /api/review/tasks), a hand-off
task page (claim, release, message, complete) and an evaluation review item page (claim, grade). The forms
post to the review API (app.api.review, app.api.reviews); reviewers, operators and admins reach them."""
from flask import render_template, request

from app.api.review.schemas import REVIEW_KINDS
from app.console.access import page
from app.console.blueprint import bp
from app.console.listing import list_args
from app.models import HANDOFF_STATUSES
from app.services import handoff_review, reviews

OVERDUE = {"yes": True, "no": False}


def queue_filters() -> dict:
    """The queue's filters from the query string; an unknown value is ignored (as an empty filter)."""
    status = request.args.get("status")
    kind = request.args.get("kind")
    return {"status": [status] if status in HANDOFF_STATUSES else None,
            "kind": [kind] if kind in REVIEW_KINDS else None,
            "overdue": OVERDUE.get(request.args.get("overdue", ""))}


@bp.get("/review", endpoint="review")
@page("reviewer")
def review_queue():
    """Every review item, newest first, with the status, kind and overdue filters; overdue ones flagged."""
    filters = queue_filters()
    listing = handoff_review.queue({**list_args(), **filters})
    return render_template("console/review_queue.html", section="Review", listing=listing,
                           statuses=HANDOFF_STATUSES, kinds=REVIEW_KINDS, args=request.args)


@bp.get("/review/tasks/<task_id>", endpoint="review_task")
@page("reviewer")
def review_task(task_id):
    """A hand-off request: instructions, objective, messages and events; claim, release, message, complete."""
    task = handoff_review.task_detail(handoff_review.get_task(task_id))
    return render_template("console/review_task.html", section="Review", task=task)


@bp.get("/review/items/<item_id>", endpoint="review_item")
@page("reviewer")
def review_item(item_id):
    """An evaluation case to grade: input, expectations, the answer with citations, passages and grades."""
    return render_template("console/review_item.html", section="Review", item=reviews.item_detail(item_id))
