"""Alembic environment of the metadata store.

mloop runs it programmatically (see :mod:`mloop.store.schema`), handing over an open
connection in ``config.attributes["connection"]``; there is no alembic.ini.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from mloop.store.models import Base


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite can't ALTER most things; batch mode copies the table instead. The same
        # revision files then serve both dialects.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


given = context.config.attributes.get("connection")
if context.is_offline_mode() or not isinstance(given, Connection):
    raise RuntimeError("mloop migrations run through mloop.store.schema (e.g. `mloop db upgrade`), "
                       "which passes an open connection; offline SQL generation is not supported")
run_migrations(given)
