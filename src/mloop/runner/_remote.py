"""Staging through fsspec, for the runner: imported only when a URL is not local.

An ``s3://`` store is reached with the ``MLOOP_S3_*`` variables the engine put in the job's
environment (endpoint, region, retries, part size: :func:`mloop.artifacts.s3.from_environ`,
used by ``filesystem_for`` when no options are given) and the credentials the job inherits
(``AWS_*``, ``~/.aws``); none of them travel in the request.
"""

from __future__ import annotations

import os

from fsspec.callbacks import DEFAULT_CALLBACK

from mloop.artifacts import filesystems, transfer
from mloop.artifacts import atomic
from mloop.artifacts.filesystems import filesystem_for, translate_errors
from mloop.errors import ArtifactError


def _fs(url: str):  # type: ignore[no-untyped-def]
    fs = filesystem_for(url)
    return fs, str(fs._strip_protocol(url))


def download_dir(url: str, dest: str) -> None:
    """The folder at ``url`` into the local folder ``dest`` (as ``ArtifactStore.get_dir``)."""
    fs, path = _fs(url)
    with translate_errors(url, "download"):
        if not fs.exists(path):
            raise FileNotFoundError(path)
        if not fs.isdir(path):
            raise ArtifactError(f"{url} is a file, not a folder", hint="use read_bytes for one file", url=url)
        transfer.get_dir(fs, path, transfer.local_folder(dest, must_exist=False), callback=DEFAULT_CALLBACK)


def upload_dir(local_dir: str, url: str) -> None:
    """The local folder into ``url``, each file written atomically (as ``ArtifactStore.put_dir``)."""
    fs, path = _fs(url)
    names = fs.protocol
    backend = filesystems.backend_for(names if isinstance(names, str) else names[0])
    with translate_errors(url, "upload to"):
        transfer.put_dir(fs, transfer.local_folder(local_dir), path, callback=DEFAULT_CALLBACK,
                         strategy=atomic.default_strategy(fs), make_dirs=backend.has_dirs)


def upload_file(local: str, url: str) -> None:
    fs, path = _fs(url)
    with translate_errors(url, "upload to"):
        parent = os.path.dirname(path.rstrip("/"))
        if parent:
            fs.makedirs(parent, exist_ok=True)
        atomic.upload_file(fs, local, path, DEFAULT_CALLBACK, atomic.default_strategy(fs))


def download_file(url: str, local: str) -> None:
    fs, path = _fs(url)
    with translate_errors(url, "download"):
        atomic.download_file(fs, path, local, DEFAULT_CALLBACK)


def read_bytes(url: str) -> bytes:
    fs, path = _fs(url)
    with translate_errors(url, "read"):
        return bytes(fs.cat_file(path))
