"""Labeling tasks over dataset versions, and the labels they receive.

Revision ID: b2e5d1f6e002
Revises: a1d4c0e5d001
Create Date: 2026-11-21 22:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b2e5d1f6e002"
down_revision: str | Sequence[str] | None = "a1d4c0e5d001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "label_tasks",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("dataset_id", sa.String(), nullable=False),
        sa.Column("base_version", sa.String(), nullable=False),
        sa.Column("task_type", sa.String(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("sample_count", sa.Integer(), nullable=False),
        sa.Column("prelabeled_count", sa.Integer(), nullable=False),
        sa.Column("output_version", sa.String(), nullable=True),
        sa.Column("run_id", sa.String(), nullable=True),
        sa.Column("step_name", sa.String(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], name=op.f("fk_label_tasks_dataset_id_datasets"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_tasks")),
        sa.UniqueConstraint("dataset_id", "name", name=op.f("uq_label_tasks_dataset_id_name")),
    )
    op.create_table(
        "label_task_labels",
        sa.Column("task_id", sa.String(), nullable=False),
        sa.Column("sample_id", sa.String(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("prelabeled", sa.Boolean(), nullable=False),
        sa.Column("annotator", sa.String(), nullable=True),
        sa.Column("labeled_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["label_tasks.id"], name=op.f("fk_label_task_labels_task_id_label_tasks"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("task_id", "sample_id", name=op.f("pk_label_task_labels")),
    )


def downgrade() -> None:
    op.drop_table("label_task_labels")
    op.drop_table("label_tasks")
