"""Steps record how they were cached and the environment they ran in.

* ``cache_key``: the digest of everything that decides a step's result (code, resolved inputs
  by content, parameters, environment, flavor); an earlier succeeded step with the same key is
  reused instead of running (indexed: the lookup is by key).
* ``cache_facts``: the parts that went into the key, so ``mloop show`` can say which one
  changed when a step was not cached.
* ``cached_from``: ``{"run_id", "step"}`` of the step whose outputs were reused.
* ``environment``: the job's environment (interpreter, requirements digest, where it lives).

Revision ID: c9a1e3f4a009
Revises: b8e2d7f2e008
Create Date: 2026-12-04 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c9a1e3f4a009"
down_revision: str | Sequence[str] | None = "b8e2d7f2e008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("steps") as batch:
        batch.add_column(sa.Column("cache_key", sa.String(), nullable=True))
        batch.add_column(sa.Column("cache_facts", sa.JSON(none_as_null=True), nullable=True))
        batch.add_column(sa.Column("cached_from", sa.JSON(none_as_null=True), nullable=True))
        batch.add_column(sa.Column("environment", sa.JSON(none_as_null=True), nullable=True))
    op.create_index(op.f("ix_steps_cache_key"), "steps", ["cache_key"])


def downgrade() -> None:
    op.drop_index(op.f("ix_steps_cache_key"), table_name="steps")
    with op.batch_alter_table("steps") as batch:
        batch.drop_column("environment")
        batch.drop_column("cached_from")
        batch.drop_column("cache_facts")
        batch.drop_column("cache_key")
