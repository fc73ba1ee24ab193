"""Engines record that they are alive, and runs record which engine claimed them.

* ``engines``: one row per live server or worker engine process (host, pid, when it started,
  its last heartbeat and how often it beats). An engine whose heartbeat is older than a few
  periods is dead, whichever host it ran on; its running runs are taken over by a live one.
* ``runs.engine_id``: the engine that claimed the run (null for runs a terminal's engine
  runs, and for runs from before engines were recorded); indexed, takeover looks runs up by it.

Revision ID: d0b2f4a5b010
Revises: c9a1e3f4a009
Create Date: 2026-12-05 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d0b2f4a5b010"
down_revision: str | Sequence[str] | None = "c9a1e3f4a009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "engines",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("host", sa.String(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("process_started_at", sa.Double(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_seconds", sa.Double(), nullable=False),
        sa.Column("version", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engines")),
    )
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("engine_id", sa.String(), nullable=True))
    op.create_index(op.f("ix_runs_engine_id"), "runs", ["engine_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_runs_engine_id"), table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("engine_id")
    op.drop_table("engines")
