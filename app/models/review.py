"""People's judgments: reviewers' grades of evaluation-run cases, and app users' feedback on answers."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin, id_column, utcnow

REVIEW_STATUSES = ("PENDING", "IN_PROGRESS", "COMPLETED")
VERDICTS = ("pass", "fail")
RATINGS = ("up", "down")


class ReviewItem(TimestampMixin, Base):
    """One case of one run put in front of a human reviewer. Its current grade lives here (per run and
    case, so re-rendering a report never loses it); every grade given is also kept in ReviewGrade."""

    __tablename__ = "eval_review_items"
    __table_args__ = (Index("uq_eval_review_items_run_case", "run_id", "case_id", unique=True),)

    id: Mapped[str] = id_column("rvi")
    evaluation_id: Mapped[str] = mapped_column(ForeignKey("evaluations.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("evaluation_runs.id", ondelete="CASCADE"))
    case_id: Mapped[str] = mapped_column(String(40))
    ordinal: Mapped[int]
    status: Mapped[str] = mapped_column(String(20), default="PENDING", index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(40))
    claimed_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    verdict: Mapped[str | None] = mapped_column(String(10))
    score: Mapped[int | None]
    comment: Mapped[str | None] = mapped_column(Text)
    graded_by: Mapped[str | None] = mapped_column(String(40))
    graded_at: Mapped[datetime | None]


class ReviewGrade(Base):
    """Every grade ever given to a review item, oldest first: a re-grade replaces the item's grade, not this."""

    __tablename__ = "eval_review_grades"

    id: Mapped[str] = id_column("grd")
    item_id: Mapped[str] = mapped_column(ForeignKey("eval_review_items.id", ondelete="CASCADE"), index=True)
    verdict: Mapped[str | None] = mapped_column(String(10))
    score: Mapped[int | None]
    comment: Mapped[str | None] = mapped_column(Text)
    graded_by: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MessageFeedback(TimestampMixin, Base):
    """Thumbs up/down on an assistant message: one per message per key (an integration's or a platform
    key's); giving it again replaces it."""

    __tablename__ = "message_feedback"
    __table_args__ = (Index("uq_message_feedback_message_rater", "message_id", "rater", unique=True),)

    id: Mapped[str] = id_column("fb")
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    rater: Mapped[str] = mapped_column(String(40))  # integration id (app contract) or API key id (platform)
    source: Mapped[str] = mapped_column(String(20))  # app, platform
    rating: Mapped[str] = mapped_column(String(10), index=True)
    comment: Mapped[str | None] = mapped_column(Text)
    comment_is_correction: Mapped[bool] = mapped_column(default=False)
