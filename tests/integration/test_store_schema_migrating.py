"""Opening a store while another process is still creating its schema.

On SQLite Alembic commits each revision on its own, so between two revisions another process
sees an intermediate revision. Opening must wait for the migration (it holds the migration
lock) rather than refuse the database as "needs `mloop db upgrade`".
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from alembic import command
from filelock import FileLock

from mloop.store import schema
from mloop.store.sql import WRITE_OPTION, create_store_engine

#: The second revision of the chain: datasets exist, later areas' tables don't yet.
INTERMEDIATE = "b2e5d1f6e002"

_OPENER = textwrap.dedent("""
    import pathlib, sys
    from mloop.store import open_store
    url, ready = sys.argv[1:3]
    pathlib.Path(ready).touch()
    with open_store(url) as store:
        store.create_release("wf", {})
    print("opened")
""")


def test_open_waits_for_a_migration_in_progress(tmp_path: Path) -> None:
    db = tmp_path / "mloop.db"
    url = f"sqlite:///{db}"
    engine = create_store_engine(url)
    with engine.execution_options(**{WRITE_OPTION: True}).connect() as connection:
        command.upgrade(schema.alembic_config(connection), INTERMEDIATE)
    lock = FileLock(db.with_name(db.name + ".lock"))  # the lock a migrating process holds
    lock.acquire()
    try:
        ready = tmp_path / "ready"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        opener = subprocess.Popen([sys.executable, "-c", _OPENER, url, str(ready)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not ready.exists() and opener.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)  # long enough to find the intermediate revision and refuse it, were it to
        assert opener.poll() is None, opener.communicate()
        schema._upgrade(engine, url)  # the other process finishes its migration ...
    finally:
        lock.release()  # ... and lets go
    out, err = opener.communicate(timeout=60)
    engine.dispose()

    assert opener.returncode == 0, err
    assert out.strip() == "opened"
