"""Indexes for newest-first pages of runs (all, and of one workflow in some status).

Measured on 10,000 runs (benchmarks/server_api.py): the server's first page of runs went from
a full scan and sort (~15 ms, growing with the store) to an index walk (~1.3 ms).

Revision ID: b8e2d7f2e008
Revises: a7d0c6e1d007
Create Date: 2026-12-04 04:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "b8e2d7f2e008"
down_revision: str | Sequence[str] | None = "a7d0c6e1d007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_runs_created_at_number"), "runs", ["created_at", "number"])
    op.create_index(op.f("ix_runs_workflow_name_status_created_at_number"), "runs",
                    ["workflow_name", "status", "created_at", "number"])


def downgrade() -> None:
    op.drop_index(op.f("ix_runs_workflow_name_status_created_at_number"), table_name="runs")
    op.drop_index(op.f("ix_runs_created_at_number"), table_name="runs")
