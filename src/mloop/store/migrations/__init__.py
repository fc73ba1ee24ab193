"""Alembic migrations of the metadata store: one tree for SQLite and PostgreSQL.

To add a revision after changing :mod:`mloop.store.models`, autogenerate it against a
database at the current head, then read and tidy it::

    from alembic import command
    from mloop.store import upgrade_database
    from mloop.store.schema import alembic_config
    from mloop.store.sql import create_store_engine

    url = "sqlite:////tmp/mloop-autogen.db"
    upgrade_database(url)
    with create_store_engine(url).connect() as connection:
        command.revision(alembic_config(connection), message="what changed", autogenerate=True)

``tests/integration/test_store_schema.py`` fails while the models and the migrations differ.
"""
