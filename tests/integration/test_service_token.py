"""The control token of a managed service is not readable from the database (issue 9, item 3):
the row holds its SHA-256 only, the token an owner-only file in the service's folder, and a row
with a plain token (older mloop) is rewritten as hash + file on the next deploy."""

from __future__ import annotations

import http.client
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_service_manager import stop_all, version_model

from mloop.config import Settings
from mloop.context import Context
from mloop.runs import open_backend
from mloop.serving import manager
from mloop.services import serving
from mloop.services.models import register_model


@pytest.fixture
def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLOOP_HOME", str(tmp_path / ".mloop"))
    old = os.umask(0o022)  # a loose umask: the token file must be owner-only anyway
    b = open_backend(Settings())
    try:
        yield b
    finally:
        os.umask(old)
        try:
            stop_all(b)
        finally:
            b.close()


def _db_token(backend: Context, name: str) -> str:
    with sqlite3.connect(backend.settings.home_path / "mloop.db") as db:
        [(value,)] = db.execute("SELECT token FROM services WHERE name = ?", (name,)).fetchall()
    return value


def _call(port: int, token: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/status", headers={manager.TOKEN_HEADER: token})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_database_holds_a_hash_and_the_token_file_is_owner_only(backend: Context, tmp_path: Path) -> None:
    ref = register_model(backend, "echo", version_model(tmp_path / "src" / "v1", "v1")).ref
    record = serving.deploy(backend, "svc", ref)
    stored = _db_token(backend, "svc")
    path = manager.token_path(record)
    token = path.read_text()
    assert stored == manager.token_digest(token) and token not in stored
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700
    assert record.control_port
    assert _call(record.control_port, stored) == 401  # what the database shows authorises nothing
    assert _call(record.control_port, stored.partition(":")[2]) == 401
    assert _call(record.control_port, "") == 401
    assert _call(record.control_port, token) == 200


def test_a_legacy_plain_token_is_rewritten_as_hash_and_file_on_the_next_deploy(backend: Context,
                                                                                tmp_path: Path) -> None:
    ref = register_model(backend, "echo", version_model(tmp_path / "src" / "v1", "v1")).ref
    record = serving.deploy(backend, "svc", ref)
    path = manager.token_path(record)
    token = path.read_text()
    # What an older mloop left: the plain token in the row, no file.
    with sqlite3.connect(backend.settings.home_path / "mloop.db") as db:
        db.execute("UPDATE services SET token = ? WHERE name = 'svc'", (token,))
    path.unlink()
    assert serving.get_service(backend, "svc").status == "running"  # still managed with the legacy token
    record = serving.deploy(backend, "svc", ref)  # the same supervisor: it keeps its token
    assert _db_token(backend, "svc") == manager.token_digest(token)
    assert path.read_text() == token and _mode(path) == 0o600
    assert record.control_port and _call(record.control_port, token) == 200
