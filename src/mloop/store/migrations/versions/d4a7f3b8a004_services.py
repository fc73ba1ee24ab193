"""Managed inference services and their deployments.

Revision ID: d4a7f3b8a004
Revises: c3f6e2a7f003
Create Date: 2026-11-21 22:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision: str = "d4a7f3b8a004"
down_revision: str | Sequence[str] | None = "c3f6e2a7f003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
