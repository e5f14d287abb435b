"""HTTP tools an agent can call. Secret header values are encrypted at rest."""
from __future__ import annotations

from sqlalchemy import Float, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin, id_column

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


class ApiTool(TimestampMixin, Base):
    __tablename__ = "api_tools"

    id: Mapped[str] = id_column("apitool")
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    method: Mapped[str] = mapped_column(String(10))
    url_template: Mapped[str] = mapped_column(String(2000))
    # [{"name", "value" (plain) or "value_encrypted" + "value_masked", "secret": bool}]
    headers: Mapped[list] = mapped_column(default=list)
    input_schema: Mapped[dict] = mapped_column(default=dict)
    timeout_seconds: Mapped[float] = mapped_column(Float, default=10.0)
