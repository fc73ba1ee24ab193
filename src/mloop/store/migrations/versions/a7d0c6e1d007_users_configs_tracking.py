"""Console users, saved run configurations, and MLflow-compatible tracking (runs, params and
tags, metric points).

Revision ID: a7d0c6e1d007
Revises: f6c9b5d0c006
Create Date: 2026-12-04 03:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7d0c6e1d007"
down_revision: str | Sequence[str] | None = "f6c9b5d0c006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('users',
        sa.Column('name', sa.String(), nullable=False),
        sa.Column('password_hash', sa.String(), nullable=False),
        sa.Column('scopes', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_users'))
        )
    op.create_table('run_configs',
        sa.Column('id', sa.String(), nullable=False),
        sa.Column('workflow_name', sa.String(), nullable=False),
        sa.Column('name', sa.String(), nullable=False),
        sa.Column('params', sa.JSON(), nullable=False),
        sa.Column('steps', sa.JSON(none_as_null=True), nullable=True),
        sa.Column('description', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_run_configs')),
        sa.UniqueConstraint('workflow_name', 'name', name=op.f('uq_run_configs_workflow_name_name'))
        )
    op.create_table('tracking_runs',
        sa.Column('id', sa.String(), nullable=False),
        sa.Column('experiment', sa.String(), nullable=False),
        sa.Column('name', sa.String(), nullable=False),
        sa.Column('status', sa.String(), nullable=False),
        sa.Column('start_time', sa.BigInteger(), nullable=False),
        sa.Column('end_time', sa.BigInteger(), nullable=True),
        sa.Column('run_id', sa.String(), nullable=True),
        sa.Column('step_name', sa.String(), nullable=True),
        sa.Column('artifact_uri', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_tracking_runs'))
        )
    op.create_index(op.f('ix_tracking_runs_experiment'), 'tracking_runs', ['experiment'], unique=False)
    op.create_index(op.f('ix_tracking_runs_run_id_step_name'), 'tracking_runs', ['run_id', 'step_name'], unique=False)
    op.create_table('tracking_values',
        sa.Column('tracking_run_id', sa.String(), nullable=False),
        sa.Column('kind', sa.String(), nullable=False),
        sa.Column('key', sa.String(), nullable=False),
        sa.Column('value', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['tracking_run_id'], ['tracking_runs.id'], name=op.f('fk_tracking_values_tracking_run_id_tracking_runs'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('tracking_run_id', 'kind', 'key', name=op.f('pk_tracking_values'))
        )
    op.create_table('tracking_metrics',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('tracking_run_id', sa.String(), nullable=False),
        sa.Column('key', sa.String(), nullable=False),
        sa.Column('value', sa.Double(), nullable=False),
        sa.Column('step', sa.BigInteger(), nullable=False),
        sa.Column('timestamp', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['tracking_run_id'], ['tracking_runs.id'], name=op.f('fk_tracking_metrics_tracking_run_id_tracking_runs'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_tracking_metrics'))
        )
    op.create_index(op.f('ix_tracking_metrics_tracking_run_id_key_id'), 'tracking_metrics', ['tracking_run_id', 'key', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_tracking_metrics_tracking_run_id_key_id"), table_name="tracking_metrics")
    op.drop_table("tracking_metrics")
    op.drop_table("tracking_values")
    op.drop_index(op.f("ix_tracking_runs_run_id_step_name"), table_name="tracking_runs")
    op.drop_index(op.f("ix_tracking_runs_experiment"), table_name="tracking_runs")
    op.drop_table("tracking_runs")
    op.drop_table("run_configs")
    op.drop_table("users")
