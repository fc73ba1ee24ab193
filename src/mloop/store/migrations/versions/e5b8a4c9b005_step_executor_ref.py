"""Steps keep the executor's opaque reference to their job (stop and reconcile go through it).

Revision ID: e5b8a4c9b005
Revises: d4a7f3b8a004
Create Date: 2026-12-04 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e5b8a4c9b005"
down_revision: str | Sequence[str] | None = "d4a7f3b8a004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("steps") as batch:
        batch.add_column(sa.Column("executor_ref", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("steps") as batch:
        batch.drop_column("executor_ref")
