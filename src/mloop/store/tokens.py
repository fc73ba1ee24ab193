"""API tokens of the team server: hashed at rest, scoped, revocable.

A token is shown once, when it is made (``mlp_<id>_<secret>``); the store keeps only the
SHA-256 of the secret. Tokens are random (32 bytes), so a fast hash is the right one: there
is nothing to brute-force that a slow hash would protect.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from mloop.store.models import Base

__all__ = ["ApiToken"]


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str] = mapped_column(String)
    secret_hash: Mapped[str] = mapped_column(String, unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
