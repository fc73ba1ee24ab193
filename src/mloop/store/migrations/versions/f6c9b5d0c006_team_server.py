"""The team server's tables, and what started each run (``runs.origin``): API tokens, schedules and their fires, notification
subscriptions with the outbox and the notifier's cursor, git triggers and their deliveries.

Revision ID: f6c9b5d0c006
Revises: e5b8a4c9b005
Create Date: 2026-12-04 02:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f6c9b5d0c006"
down_revision: str | Sequence[str] | None = "e5b8a4c9b005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("origin", sa.JSON(none_as_null=True), nullable=True))
    op.create_table('api_tokens',
        sa.Column('id', sa.String(), nullable=False),
        sa.Column('name', sa.String(), nullable=False),
        sa.Column('secret_hash', sa.String(), nullable=False),
        sa.Column('scopes', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
        sa.UniqueConstraint('secret_hash', name=op.f('uq_api_tokens_secret_hash'))
        )
    op.create_table('schedules',
        sa.Column('id', sa.String(), nullable=False),
        sa.Column('name', sa.String(), nullable=False),
        sa.Column('workflow_name', sa.String(), nullable=False),
        sa.Column('cron', sa.String(), nullable=False),
        sa.Column('timezone', sa.String(), nullable=False),
        sa.Column('params', sa.JSON(), nullable=False),
        sa.Column('catchup', sa.String(), nullable=False),
        sa.Column('paused', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_fire_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('next_fire_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_schedules')),
        sa.UniqueConstraint('name', name=op.f('uq_schedules_name'))
        )
    op.create_index(op.f('ix_schedules_workflow_name'), 'schedules', ['workflow_name'], unique=False)
    op.create_table('schedule_fires',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('schedule_id', sa.String(), nullable=False),
        sa.Column('fire_time', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('run_id', sa.String(), nullable=True),
        sa.Column('status', sa.String(), nullable=False),
        sa.Column('message', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['schedule_id'], ['schedules.id'], name=op.f('fk_schedule_fires_schedule_id_schedules'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_schedule_fires')),
        sa.UniqueConstraint('schedule_id', 'fire_time', name=op.f('uq_schedule_fires_schedule_id_fire_time'))
        )
    op.create_table('subscriptions',
        sa.Column('id', sa.String(), nullable=False),
        sa.Column('name', sa.String(), nullable=False),
        sa.Column('workflow_name', sa.String(), nullable=True),
        sa.Column('step_name', sa.String(), nullable=True),
        sa.Column('events', sa.JSON(), nullable=False),
        sa.Column('channel', sa.String(), nullable=False),
        sa.Column('target', sa.Text(), nullable=False),
        sa.Column('secret', sa.String(), nullable=True),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_subscriptions')),
        sa.UniqueConstraint('name', name=op.f('uq_subscriptions_name'))
        )
    op.create_table('notifications',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('subscription_id', sa.String(), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('event', sa.String(), nullable=False),
        sa.Column('run_id', sa.String(), nullable=False),
        sa.Column('step_name', sa.String(), nullable=True),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], name=op.f('fk_notifications_subscription_id_subscriptions'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications')),
        sa.UniqueConstraint('subscription_id', 'event_id', name=op.f('uq_notifications_subscription_id_event_id'))
        )
    op.create_index(op.f('ix_notifications_run_id'), 'notifications', ['run_id'], unique=False)
    op.create_index(op.f('ix_notifications_status'), 'notifications', ['status'], unique=False)
    op.create_table('notifier_cursor',
        sa.Column('name', sa.String(), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_notifier_cursor'))
        )
    op.create_table('git_triggers',
        sa.Column('name', sa.String(), nullable=False),
        sa.Column('repo_url', sa.Text(), nullable=False),
        sa.Column('workflow_path', sa.String(), nullable=False),
        sa.Column('branches', sa.JSON(), nullable=False),
        sa.Column('paths', sa.JSON(), nullable=False),
        sa.Column('params', sa.JSON(), nullable=False),
        sa.Column('secret', sa.String(), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_git_triggers'))
        )
    op.create_table('trigger_deliveries',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('trigger_name', sa.String(), nullable=False),
        sa.Column('delivery_id', sa.String(), nullable=False),
        sa.Column('provider', sa.String(), nullable=False),
        sa.Column('ref', sa.String(), nullable=True),
        sa.Column('commit', sa.String(), nullable=True),
        sa.Column('status', sa.String(), nullable=False),
        sa.Column('message', sa.Text(), nullable=True),
        sa.Column('run_id', sa.String(), nullable=True),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_trigger_deliveries')),
        sa.UniqueConstraint('trigger_name', 'delivery_id', name=op.f('uq_trigger_deliveries_trigger_name_delivery_id'))
        )
    op.create_index(op.f('ix_trigger_deliveries_trigger_name'), 'trigger_deliveries', ['trigger_name'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("origin")
    op.drop_index(op.f("ix_trigger_deliveries_trigger_name"), table_name="trigger_deliveries")
    op.drop_table("trigger_deliveries")
    op.drop_table("git_triggers")
    op.drop_table("notifier_cursor")
    op.drop_index(op.f("ix_notifications_status"), table_name="notifications")
    op.drop_index(op.f("ix_notifications_run_id"), table_name="notifications")
    op.drop_table("notifications")
    op.drop_table("subscriptions")
    op.drop_table("schedule_fires")
    op.drop_index(op.f("ix_schedules_workflow_name"), table_name="schedules")
    op.drop_table("schedules")
    op.drop_table("api_tokens")
