"""Labeling tasks over dataset versions, and the labels they receive.

Revision ID: b2e5d1f6e002
Revises: a1d4c0e5d001
Create Date: 2026-11-21 22:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision: str = "b2e5d1f6e002"
down_revision: str | Sequence[str] | None = "a1d4c0e5d001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
