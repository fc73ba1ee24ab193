"""``ArtifactStore``: one fsspec filesystem behind a root URL, with atomic writes.

Every method takes a location as a full URL on this store's filesystem, an absolute path
(local stores only), or a path relative to the store's root (``runs/1/model.pt``). URLs
that come back keep the caller's form. fsspec and OS errors are translated into
:class:`~mloop.errors.ArtifactError` naming the URL.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Mapping
from typing import Any

from fsspec.callbacks import DEFAULT_CALLBACK, Callback
from fsspec.spec import AbstractFileSystem

from mloop.artifacts import atomic, transfer
from mloop.artifacts.atomic import WriteStrategy
from mloop.artifacts.filesystems import backend_for, filesystem_for, translate_errors
from mloop.artifacts.urls import is_local, join_url, split_protocol
from mloop.errors import ArtifactError

__all__ = ["COMPLETE_SUFFIX", "ArtifactStore"]

#: The completion mark :meth:`ArtifactStore.publish_dir` writes beside a folder on a remote store.
COMPLETE_SUFFIX = ".complete"


class ArtifactStore:
    """Reads and writes artifacts under ``root_url`` through one fsspec filesystem.

    Args:
        root_url: an absolute path or URL (pass user input through
            :func:`~mloop.artifacts.resolve_url` first; ``obs://`` must be resolved).
            A relative path is made absolute against the current directory.
        storage_options: keyword arguments for the filesystem (credentials, endpoint).
        write_strategy: how atomic writes are made (``replace``, ``move`` or ``direct``,
            see :mod:`mloop.artifacts.atomic`); ``None`` picks the right one for the backend.

    Raises:
        MissingExtraError: the backend's package is not installed.
        ArtifactError: the URL's protocol is unknown or the filesystem cannot be opened.
    """

    def __init__(self, root_url: str, *, storage_options: Mapping[str, Any] | None = None,
                 write_strategy: WriteStrategy | None = None) -> None:
        if split_protocol(root_url)[0] is None:
            root_url = os.path.abspath(os.path.expanduser(root_url))
        self._root = root_url.rstrip("/") or root_url
        self._fs: AbstractFileSystem = filesystem_for(self._root, storage_options)
        names = self._fs.protocol
        self._protocols: tuple[str, ...] = (names,) if isinstance(names, str) else tuple(names)
        self._backend = backend_for(self._protocols[0])
        self._local = is_local(self._root)
        self._strategy: WriteStrategy = write_strategy or atomic.default_strategy(self._fs)
        if self._strategy == "replace" and not self._local:
            raise ArtifactError(f"write_strategy='replace' needs a local root, not {self._root}",
                                hint="leave write_strategy unset to pick the backend's strategy")

    @property
    def root(self) -> str:
        """The root URL (or absolute path), without a trailing ``/``."""
        return self._root

    @property
    def fs(self) -> AbstractFileSystem:
        """The underlying fsspec filesystem (for callers that need more than this class offers)."""
        return self._fs

    @property
    def write_strategy(self) -> WriteStrategy:
        """How this store makes writes atomic."""
        return self._strategy

    def __repr__(self) -> str:
        return f"ArtifactStore({self._root!r})"

    def url(self, *parts: str) -> str:
        """The URL of ``parts`` joined under the root, e.g. ``store.url("runs", run_id, "model")``.

        Raises:
            ArtifactError: a part is absolute or climbs out of the root with ``..``.
        """
        return join_url(self._root, *parts)

    def exists(self, url: str) -> bool:
        """Whether a file or folder exists at ``url``."""
        path = self._path(url)
        with translate_errors(url, "check"):
            return bool(self._fs.exists(path))

    def makedirs(self, url: str) -> None:
        """Create the folder ``url`` and its parents; an existing folder is fine.

        On object stores, where folders are key prefixes, this does nothing.
        """
        path = self._path(url)
        if not self._backend.has_dirs:
            return
        with translate_errors(url, "create the folder"):
            self._fs.makedirs(path, exist_ok=True)

    def write_bytes(self, url: str, data: bytes | bytearray | memoryview, *,
                    callback: Callback | None = None) -> None:
        """Write ``data`` to ``url`` atomically, creating parent folders.

        Readers see either the old content or the new, never a mix; if the write fails
        (or ``callback`` raises) the old content stays and no temporary file is left.

        Args:
            url: where to write.
            data: the bytes.
            callback: progress, in bytes (``set_size`` then ``relative_update`` per MiB).

        Raises:
            ArtifactError: the storage refused the write.
        """
        path = self._path(url)
        with translate_errors(url, "write"):
            atomic.write_bytes(self._fs, path, data, callback or DEFAULT_CALLBACK, self._strategy)

    def write_text(self, url: str, text: str, *, encoding: str = "utf-8",
                   callback: Callback | None = None) -> None:
        """Write ``text`` to ``url`` atomically (see :meth:`write_bytes`)."""
        self.write_bytes(url, text.encode(encoding), callback=callback)

    def read_bytes(self, url: str, *, callback: Callback | None = None) -> bytes:
        """Read the whole file at ``url``.

        Raises:
            ArtifactError: it does not exist, is a folder, or cannot be read.
        """
        path = self._path(url)
        with translate_errors(url, "read"):
            if callback is None:
                return bytes(self._fs.cat_file(path))
            return atomic.read_bytes(self._fs, path, callback)

    def read_text(self, url: str, *, encoding: str = "utf-8") -> str:
        """Read the file at ``url`` as text."""
        return self.read_bytes(url).decode(encoding)

    def put_dir(self, local_dir: str, url: str, *, callback: Callback | None = None) -> None:
        """Copy the contents of the local folder ``local_dir`` into ``url``, recursively.

        A merge: files already at ``url`` stay unless overwritten; each file is written
        atomically. Symlinks are followed (cycles and dangling links are skipped). Empty
        folders are kept where the backend has folders.

        Args:
            local_dir: the source folder (a path or ``file://`` URL).
            url: the destination folder.
            callback: progress in files; each file's bytes go to ``callback.branched``.

        Raises:
            ArtifactError: ``local_dir`` is not a folder or a copy failed.
        """
        dest = self._path(url)
        source = transfer.local_folder(local_dir)
        with translate_errors(url, "upload to"):
            transfer.put_dir(self._fs, source, dest, callback=callback or DEFAULT_CALLBACK,
                             strategy=self._strategy, make_dirs=self._backend.has_dirs)

    def get_dir(self, url: str, local_dir: str, *, callback: Callback | None = None) -> None:
        """Copy the folder at ``url`` into the local folder ``local_dir`` (created if needed).

        Args:
            url: the source folder.
            local_dir: the destination (a path or ``file://`` URL).
            callback: progress in files; each file's bytes go to ``callback.branched``.

        Raises:
            ArtifactError: ``url`` does not exist, is a file, or a copy failed.
        """
        source = self._path(url)
        dest = transfer.local_folder(local_dir, must_exist=False)
        with translate_errors(url, "download"):
            if not self._fs.exists(source):
                raise FileNotFoundError(source)
            if not self._fs.isdir(source):
                raise ArtifactError(f"{url} is a file, not a folder", hint="use read_bytes for one file", url=url)
            transfer.get_dir(self._fs, source, dest, callback=callback or DEFAULT_CALLBACK)

    def publish_dir(self, local_dir: str, url: str, *, callback: Callback | None = None) -> None:
        """Store the local folder ``local_dir`` at ``url`` *whole*: readers that ask
        :meth:`is_published` see all of it or nothing, even if this process dies half-way.

        For content-addressed folders (code snapshots): ``url`` should be new or hold the same
        files. On a local root the folder is built under a hidden sibling name and renamed
        into place. Elsewhere a folder cannot be renamed atomically (on S3 a "move" copies and
        deletes object by object), so the files go straight to ``url`` and a completion mark,
        ``<url>.complete``, is written last; a killed upload leaves files without the mark,
        which the next publication of the same folder completes.

        Raises:
            ArtifactError: ``local_dir`` is not a folder or a copy failed.
        """
        local = transfer.local_folder(local_dir)
        if self._local:
            tmp = atomic.temp_sibling(self._path(url).rstrip(os.sep), os.sep)
            with translate_errors(url, "publish"):
                transfer.put_dir(self._fs, local, tmp, callback=callback or DEFAULT_CALLBACK,
                                 strategy=self._strategy, make_dirs=True)
                try:
                    os.rename(tmp, self._path(url))
                except OSError:
                    self._fs.rm(tmp, recursive=True)
                    if not os.path.isdir(self._path(url)):  # not another writer that won
                        raise
            return
        self.put_dir(local, url, callback=callback)
        self.write_text(url.rstrip("/") + COMPLETE_SUFFIX, "")

    def is_published(self, url: str) -> bool:
        """Whether :meth:`publish_dir` stored ``url`` completely."""
        if self._local:
            return self.exists(url)
        return self.exists(url.rstrip("/") + COMPLETE_SUFFIX)

    def list(self, url: str, *, recursive: bool = False) -> builtins.list[str]:
        """The URLs under the folder ``url``, sorted.

        Without ``recursive``: direct children, folders with a trailing ``/``. With it:
        every file below, at any depth. Listing a file gives that file.

        Raises:
            ArtifactError: ``url`` does not exist.
        """
        path = self._path(url)
        with translate_errors(url, "list"):
            if not self._fs.exists(path):
                raise FileNotFoundError(path)
            return transfer.list_urls(self._fs, path, url, recursive=recursive)

    def rm(self, url: str, recursive: bool = False, *, missing_ok: bool = False) -> None:
        """Delete the file or folder at ``url``.

        Args:
            url: what to delete.
            recursive: needed to delete a folder that is not empty.
            missing_ok: do nothing when ``url`` does not exist instead of raising.

        Raises:
            ArtifactError: it does not exist (unless ``missing_ok``), or it is a folder that
                is not empty and ``recursive`` is false.
        """
        path = self._path(url)
        with translate_errors(url, "delete"):
            if not self._fs.exists(path):
                if missing_ok:
                    return
                raise FileNotFoundError(path)
            if self._fs.isdir(path):
                if not recursive and self._fs.ls(path, detail=False):
                    raise ArtifactError(f"cannot delete {url}: the folder is not empty",
                                        hint="pass recursive=True to delete it with its contents", url=url)
                self._fs.rm(path, recursive=True)
            else:
                self._fs.rm_file(path)

    def _path(self, url: str) -> str:
        """The filesystem path for ``url``, refusing URLs of other filesystems."""
        protocol, _ = split_protocol(url)
        if protocol is None:
            expanded = os.path.expanduser(url)
            if os.path.isabs(expanded) or expanded.startswith("/"):
                if not self._local:
                    raise ArtifactError(
                        f"{url} is a local path, but this store is on {self._root}",
                        hint=f"write it as a URL under {self._root}, or relative to it", url=url)
                return str(self._fs._strip_protocol(expanded))
            url = join_url(self._root, url)
        elif protocol not in self._protocols or "::" in url:
            raise ArtifactError(f"{url} is not on this store's filesystem ({self._root})",
                                hint="open an ArtifactStore for that URL's root", url=url)
        return str(self._fs._strip_protocol(url))
