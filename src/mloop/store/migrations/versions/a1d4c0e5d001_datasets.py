"""Datasets: datasets, immutable content-addressed versions, file objects, the re-read cache.

Revision ID: a1d4c0e5d001
Revises: 89f5d326744f
Create Date: 2026-11-21 22:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision: str = "a1d4c0e5d001"
down_revision: str | Sequence[str] | None = "89f5d326744f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
