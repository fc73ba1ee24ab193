"""Fixtures shared by every test."""

from __future__ import annotations

import getpass
import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

#: Where the project expects PostgreSQL (trust auth); the first that answers is used.
POSTGRES_ADMIN_URLS = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    f"postgresql+psycopg://{getpass.getuser()}@127.0.0.1:5432/test",
)


@pytest.fixture(autouse=True)
def _no_mloop_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's ``MLOOP_*`` settings out of every test."""
    for name in list(os.environ):
        if name.startswith("MLOOP_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def pg_admin_engine() -> Iterator[Engine]:
    """An AUTOCOMMIT engine on the local server's ``test`` database, for CREATE/DROP DATABASE.

    Skips the test when no PostgreSQL server (or no psycopg) is available.
    """
    reasons = []
    for url in POSTGRES_ADMIN_URLS:
        try:
            engine = create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
            with engine.connect():
                pass
        except (SQLAlchemyError, ImportError) as exc:
            reasons.append(f"{url}: {str(exc).splitlines()[0]}")
            continue
        yield engine
        engine.dispose()
        return
    pytest.skip("PostgreSQL is not reachable: " + "; ".join(reasons))


@pytest.fixture
def pg_url(pg_admin_engine: Engine) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped after the test."""
    name = f"mloop_test_{uuid.uuid4().hex[:12]}"
    with pg_admin_engine.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield make_url(pg_admin_engine.url).set(database=name).render_as_string(hide_password=False)
    with pg_admin_engine.connect() as connection:
        # FORCE: a test that failed half-way may still hold connections.
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", autouse=True)
def _no_services_left_behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Managed services are detached on purpose (they outlive the run that deployed them). A test
    that fails half-way may leave one: end every mloop server process whose files live under this
    session's temporary folder, so no test run leaves processes on the machine."""
    yield
    import psutil

    base = str(tmp_path_factory.getbasetemp())
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if any(part.startswith("mloop.serving") for part in cmdline) and any(base in part for part in cmdline):
            try:
                proc.kill()
            except psutil.Error:
                pass
