"""Model registry: models, versions, aliases.

Revision ID: c3f6e2a7f003
Revises: b2e5d1f6e002
Create Date: 2026-11-21 22:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision: str = "c3f6e2a7f003"
down_revision: str | Sequence[str] | None = "b2e5d1f6e002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
