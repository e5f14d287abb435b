"""Prompt templates and their immutable version history."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, TimestampMixin, id_column, utcnow

TEMPLATE_TYPES = ("system", "user", "rag")


class PromptTemplate(TimestampMixin, Base):
    __tablename__ = "prompt_templates"

    id: Mapped[str] = id_column("pt")
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(20))
    # The current version's text and variables are kept here too, so reads need no join.
    template: Mapped[str] = mapped_column(Text)
    variables: Mapped[list] = mapped_column(default=list)
    version: Mapped[int] = mapped_column(default=1)

    versions: Mapped[list[PromptTemplateVersion]] = relationship(
        back_populates="prompt_template",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="PromptTemplateVersion.version",
    )


class PromptTemplateVersion(Base):
    __tablename__ = "prompt_template_versions"
    __table_args__ = (UniqueConstraint("template_id", "version", name="uq_prompt_template_versions_version"),)

    id: Mapped[str] = id_column("ptv")
    template_id: Mapped[str] = mapped_column(ForeignKey("prompt_templates.id", ondelete="CASCADE"), index=True)
    version: Mapped[int]
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    template: Mapped[str] = mapped_column(Text)
    variables: Mapped[list] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    prompt_template: Mapped[PromptTemplate] = relationship(back_populates="versions")
