"""``moxing.file`` over fsspec: ModelArts training scripts move data with ``import moxing as mox;
mox.file.copy_parallel(src, dst)`` and run unchanged in mloop.

``obs://bucket/key`` means ``<obs root>/bucket/key``: inside a JobStep the root the job's
``MLOOP_OBS_ROOT`` names (the engine's ``Settings.resolved_obs_root``), outside one the
settings' (``MLOOP_OBS_ROOT``, ``mloop.toml``, default ``<home>/artifacts/obs``). Other URLs
(``s3://``, ``memory://``, ``file://``) and plain paths are used as they are.

Semantics follow moxing's documentation:

* ``copy(src, dst)`` copies one file (``dst`` is the file's new name, parents are made);
* ``copy_parallel(src, dst)`` copies a folder's *contents* into ``dst`` (made if missing);
  a file ``src`` is copied as :func:`copy` does. A copy of a location onto itself is a no-op.
* ``list_directory(url, recursive=False)`` gives names relative to ``url``, sorted;
  ``glob(pattern)`` gives full URLs in the pattern's own spelling (``obs://`` stays ``obs://``);
* ``remove(url, recursive=False)`` removes a file, or a folder when ``recursive``;
  a folder without ``recursive`` raises ``IsADirectoryError``, a missing path ``FileNotFoundError``;
* ``File(url, mode)`` is ``open`` for any of these locations.

Layer: compat (imports artifacts and, outside a job, config).
"""

from __future__ import annotations

import os
import posixpath
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["File", "append", "copy", "copy_parallel", "exists", "get_size", "glob", "is_directory",
           "list_directory", "make_dirs", "mk_dir", "read", "remove", "rename", "set_auth", "shift", "stat",
           "walk", "write"]

_OBS = "obs://"


def obs_root() -> str:
    """Where ``obs://`` lives for this process: ``MLOOP_OBS_ROOT`` (a job gets it), else settings."""
    root = os.environ.get("MLOOP_OBS_ROOT")
    if root:
        return root
    from mloop.config import Settings

    return Settings().resolved_obs_root


def _resolve(url: Any) -> str:
    url = os.fspath(url)
    if url[:len(_OBS)].lower() == _OBS:
        from mloop.artifacts import resolve_url

        return resolve_url(url, obs_root=obs_root(), base_dir=os.getcwd())
    return url


def _fs(url: Any) -> tuple[Any, str]:
    """The filesystem and its path for ``url`` (``obs://`` resolved)."""
    from mloop.artifacts import filesystem_for, is_local, local_path

    resolved = _resolve(url)
    if is_local(resolved):
        path = os.path.abspath(os.path.expanduser(local_path(resolved) or resolved))
        return filesystem_for("file://"), path
    fs = filesystem_for(resolved)
    return fs, fs._strip_protocol(resolved).rstrip("/")


def _is_local_fs(fs: Any) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def _same(a: tuple[Any, str], b: tuple[Any, str]) -> bool:
    (fa, pa), (fb, pb) = a, b
    if _is_local_fs(fa) and _is_local_fs(fb):
        return os.path.realpath(pa) == os.path.realpath(pb)
    return fa is fb and pa.rstrip("/") == pb.rstrip("/")


# -- questions --------------------------------------------------------------------------------
def exists(url: Any) -> bool:
    fs, path = _fs(url)
    return bool(fs.exists(path))


def is_directory(url: Any) -> bool:
    fs, path = _fs(url)
    return bool(fs.isdir(path))


def get_size(url: Any, recursive: bool = False) -> int:
    fs, path = _fs(url)
    if fs.isdir(path):
        if not recursive:
            raise IsADirectoryError(f"{url} is a folder; pass recursive=True")
        return int(fs.du(path, total=True))
    return int(fs.size(path))


def stat(url: Any) -> Any:
    """``os.stat``-like facts: ``length``, ``is_directory``, ``mtime_nsec`` (moxing's names)."""
    from types import SimpleNamespace

    fs, path = _fs(url)
    info = fs.info(path)
    mtime = info.get("mtime") or info.get("LastModified") or info.get("created") or 0
    mtime = mtime.timestamp() if hasattr(mtime, "timestamp") else float(mtime)
    return SimpleNamespace(length=int(info.get("size") or 0), is_directory=info.get("type") == "directory",
                           mtime_nsec=int(mtime * 1e9), path=url)


def list_directory(url: Any, recursive: bool = False) -> list[str]:
    """Names under folder ``url`` (relative paths with ``recursive``, folders included), sorted."""
    fs, path = _fs(url)
    if not fs.isdir(path):
        raise NotADirectoryError(f"{url} is not a folder")
    base = path.rstrip("/")
    if recursive:
        found = fs.find(path, withdirs=True)
    else:
        found = fs.ls(path, detail=False)
    names = []
    for item in found:
        item = fs._strip_protocol(item).rstrip("/")
        if item == base:
            continue
        names.append(item[len(base) + 1:] if item.startswith(base + "/") else posixpath.basename(item))
    return sorted(names)


def glob(pattern: Any) -> list[str]:
    """Full locations matching ``pattern``, in the pattern's spelling (``obs://…`` stays so)."""
    pattern = os.fspath(pattern)
    star = min((i for i in (pattern.find(c) for c in "*?[") if i >= 0), default=len(pattern))
    prefix = pattern[:pattern.rfind("/", 0, star) + 1]  # the literal folder part, as written
    fs, path = _fs(prefix or ".")
    base = path.rstrip("/")
    found = fs.glob(base + "/" + pattern[len(prefix):]) if prefix else fs.glob(os.path.join(path, pattern))
    out = []
    for item in found:
        item = fs._strip_protocol(item)
        rel = item[len(base) + 1:] if item.startswith(base + "/") else item
        out.append(prefix + rel if prefix else os.path.relpath(item))
    return sorted(out)


def walk(url: Any, topdown: bool = True, onerror: Any = None) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk`` over any location; the folders are given in ``url``'s own spelling."""
    fs, path = _fs(url)
    top = os.fspath(url).rstrip("/")
    base = path.rstrip("/")
    try:
        tree = list(fs.walk(path, topdown=topdown))
    except Exception as exc:  # noqa: BLE001 - as os.walk: errors go to onerror
        if onerror is not None:
            onerror(exc)
        return
    for folder, dirs, files in tree:
        folder = fs._strip_protocol(folder).rstrip("/")
        rel = folder[len(base):].lstrip("/") if folder.startswith(base) else ""
        yield (top + "/" + rel if rel else top), sorted(dirs), sorted(files)


# -- changes ----------------------------------------------------------------------------------
def make_dirs(url: Any) -> None:
    fs, path = _fs(url)
    fs.makedirs(path, exist_ok=True)


def mk_dir(url: Any) -> None:
    fs, path = _fs(url)
    parent = posixpath.dirname(path) if not _is_local_fs(fs) else os.path.dirname(path)
    if parent and not fs.exists(parent):
        raise FileNotFoundError(f"the parent of {url} does not exist; use make_dirs")
    fs.makedirs(path, exist_ok=True)


def remove(url: Any, recursive: bool = False) -> None:
    fs, path = _fs(url)
    if not fs.exists(path):
        raise FileNotFoundError(f"{url} does not exist")
    if fs.isdir(path):
        if not recursive:
            raise IsADirectoryError(f"{url} is a folder; pass recursive=True to remove it")
        fs.rm(path, recursive=True)
    else:
        fs.rm_file(path)


def _copy_file(src: tuple[Any, str], dst: tuple[Any, str]) -> None:
    (sfs, spath), (dfs, dpath) = src, dst
    s_local, d_local = _is_local_fs(sfs), _is_local_fs(dfs)
    if d_local:
        os.makedirs(os.path.dirname(dpath) or ".", exist_ok=True)
    else:
        dfs.makedirs(posixpath.dirname(dpath), exist_ok=True)
    if s_local and d_local:
        shutil.copyfile(spath, dpath)
    elif s_local:
        dfs.put_file(spath, dpath)
    elif d_local:
        sfs.get_file(spath, dpath)
    elif sfs is dfs:
        sfs.copy(spath, dpath)
    else:
        with sfs.open(spath, "rb") as fin, dfs.open(dpath, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)


def copy(src_url: Any, dst_url: Any, client_id: Any = None, **_: Any) -> None:
    """Copy one file to ``dst_url`` (its new name). ``src_url`` onto itself is a no-op."""
    src, dst = _fs(src_url), _fs(dst_url)
    if _same(src, dst):
        return
    if src[0].isdir(src[1]):
        raise IsADirectoryError(f"{src_url} is a folder; use copy_parallel")
    if not src[0].exists(src[1]):
        raise FileNotFoundError(f"{src_url} does not exist")
    _copy_file(src, dst)


def copy_parallel(src_url: Any, dst_url: Any, file_list: Any = None, threads: int = 16, is_processing: bool = True,
                  use_queue: bool = True, **_: Any) -> None:
    """Copy the contents of folder ``src_url`` into ``dst_url`` (made if missing), several files
    at a time; ``file_list`` limits it to those relative paths. A file ``src_url`` is copied as
    :func:`copy` does; a folder onto itself is a no-op."""
    src, dst = _fs(src_url), _fs(dst_url)
    if _same(src, dst):
        return
    sfs, spath = src
    dfs, dpath = dst
    if not sfs.exists(spath):
        raise FileNotFoundError(f"{src_url} does not exist")
    if not sfs.isdir(spath):
        _copy_file(src, dst)
        return
    base = spath.rstrip("/")
    if file_list is not None:
        rels = [str(f).lstrip("/") for f in file_list]
    else:
        rels = []
        for item in sfs.find(spath):
            item = sfs._strip_protocol(item)
            rels.append(item[len(base) + 1:] if item.startswith(base + "/") else posixpath.basename(item))
    join = os.path.join if _is_local_fs(dfs) else posixpath.join
    if _is_local_fs(dfs):
        os.makedirs(dpath, exist_ok=True)
    else:
        dfs.makedirs(dpath, exist_ok=True)

    def one(rel: str) -> None:
        _copy_file((sfs, base + "/" + rel), (dfs, join(dpath, *rel.split("/"))))

    if len(rels) <= 1 or threads <= 1:
        for rel in rels:
            one(rel)
        return
    with ThreadPoolExecutor(max_workers=max(1, min(int(threads), 32, len(rels)))) as pool:
        for _done in pool.map(one, rels):
            pass


def rename(src_url: Any, dst_url: Any) -> None:
    src, dst = _fs(src_url), _fs(dst_url)
    if _same(src, dst):
        return
    (sfs, spath), (dfs, dpath) = src, dst
    if sfs is dfs:
        sfs.mv(spath, dpath, recursive=True)
        return
    if sfs.isdir(spath):
        copy_parallel(src_url, dst_url)
    else:
        copy(src_url, dst_url)
    remove(src_url, recursive=True)


# -- contents ---------------------------------------------------------------------------------
class File:
    """``open`` for any location: ``with mox.file.File("obs://b/k.txt", "w") as f: f.write(...)``."""

    def __init__(self, url: Any, mode: str = "r", encoding: str | None = None, **kwargs: Any) -> None:
        fs, path = _fs(url)
        if any(c in mode for c in "wax"):
            parent = os.path.dirname(path) if _is_local_fs(fs) else posixpath.dirname(path)
            if parent:
                fs.makedirs(parent, exist_ok=True)
        if "b" not in mode:
            kwargs.setdefault("encoding", encoding or "utf-8")
        self._fh = fs.open(path, mode, **kwargs)
        self.name = os.fspath(url)
        self.mode = mode

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._fh)

    def __enter__(self) -> File:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()

    def close(self) -> None:
        self._fh.close()


def read(url: Any, binary: bool = False) -> Any:
    with File(url, "rb" if binary else "r") as fh:
        return fh.read()


def write(url: Any, content: Any, binary: bool = False) -> None:
    with File(url, "wb" if binary else "w") as fh:
        fh.write(content)


def append(url: Any, content: Any, binary: bool = False) -> None:
    with File(url, "ab" if binary else "a") as fh:
        fh.write(content)


# -- settings moxing has and mloop needs not --------------------------------------------------
def set_auth(*_: Any, **__: Any) -> None:
    """Accepted and ignored: mloop's store needs no OBS credentials (set S3 ones in settings)."""


def shift(*_: Any, **__: Any) -> None:
    """``mox.file.shift('os', 'mox')`` patches ``open``/``os`` for OBS on ModelArts; mloop does not
    patch builtins: use ``mox.file.File`` and the functions here for ``obs://`` locations."""
