"""Artifact URLs: turn what a user wrote into one absolute location.

A location is either a plain local path (``/data/x``) or an fsspec URL (``s3://b/k``,
``memory://r/k``, ``file:///data/x``). ``obs://bucket/key`` is the ModelArts spelling of
an object-store URL; mloop maps it onto the configured ``obs_root`` (an S3-compatible
bucket or a local folder), so code written for ModelArts runs unchanged.

Nothing here touches a filesystem: these are pure string functions, safe to call while
a spec is being built.
"""

from __future__ import annotations

import os
import posixpath
import re

from mloop.errors import ArtifactError

__all__ = ["OBS_ABSOLUTE_MODES", "OBS_PROTOCOL", "is_local", "join_url", "local_path", "resolve_obs_path",
           "resolve_url", "split_protocol"]

#: The alias protocol resolved against ``Settings.resolved_obs_root``.
OBS_PROTOCOL = "obs"

# A scheme needs two or more characters so that Windows drive letters (``C:\x``) stay
# paths. ``a::b://c`` is an fsspec chained URL; its first link names the protocol.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+)(://|::)")
_LOCAL_PROTOCOLS = frozenset({"file", "local"})


def split_protocol(url: str) -> tuple[str | None, str]:
    """Split ``scheme://rest`` into ``(scheme, rest)``; plain paths give ``(None, path)``.

    Scheme names are lower-cased. For chained URLs (``simplecache::s3://b/k``) the first
    link is the protocol and the rest is returned unchanged.
    """
    match = _SCHEME.match(url)
    if match is None:
        return None, url
    return match.group(1).lower(), url[match.end():]


def join_url(base: str, *parts: str) -> str:
    """Join relative ``parts`` under ``base`` with ``/``, keeping ``base``'s own form.

    Empty parts are skipped. A ``..`` that would climb out of ``base`` is refused so that
    names coming from specs (step names, output names) cannot escape a root.

    Raises:
        ArtifactError: a part is absolute, carries a scheme, or climbs out of ``base``.
    """
    keys = (_relative_key(p, what=f"path under {base}") for p in parts if p)
    rel = "/".join(k for k in keys if k)
    if not rel:
        return base
    return base.rstrip("/") + "/" + rel


def resolve_url(path_or_url: str, *, obs_root: str, base_dir: str) -> str:
    """Turn a user-written location into an absolute path or URL.

    Rules:
        * ``obs://bucket/key`` → ``<obs_root>/bucket/key`` (``obs_root`` is itself resolved,
          so it may be relative, ``~``-based or any URL);
        * other URLs with a scheme (``s3://``, ``memory://``, ``file://``, ``gs://`` …) are
          returned unchanged;
        * plain paths get ``~`` expanded and, when relative, are made absolute against
          ``base_dir`` (no symlinks are resolved);
        * a trailing ``/`` (a "this is a folder" marker) is kept.

    Args:
        path_or_url: what the user wrote.
        obs_root: where ``obs://`` URLs live, usually ``Settings.resolved_obs_root``.
        base_dir: folder that relative paths are relative to (the workflow's folder or
            the current directory).

    Returns:
        An absolute local path or a URL with a scheme.

    Raises:
        ArtifactError: the location is empty, an ``obs://`` URL has no bucket or climbs
            out of its bucket with ``..``, or ``obs_root`` is itself an ``obs://`` URL.
    """
    if not path_or_url or not path_or_url.strip():
        raise ArtifactError("an artifact location is empty", hint="give a path or a URL such as s3://bucket/key")
    trailing = path_or_url.endswith(("/", os.sep))
    protocol, rest = split_protocol(path_or_url)
    if protocol == OBS_PROTOCOL:
        return _resolve_obs(path_or_url, rest, trailing, obs_root=obs_root, base_dir=base_dir)
    if protocol is not None:
        return path_or_url
    path = os.path.expanduser(path_or_url)
    if not os.path.isabs(path):
        path = os.path.join(os.path.abspath(os.path.expanduser(base_dir)), path)
    path = os.path.normpath(path)
    if trailing and not path.endswith(os.sep):
        path += os.sep
    return path


#: Readings of a leading-slash path (``/bucket/dir/``) in an OBS field: see :func:`resolve_obs_path`.
OBS_ABSOLUTE_MODES = ("auto", "local", "obs")


def resolve_obs_path(path_or_url: str, *, obs_root: str, base_dir: str, absolute_paths: str = "auto",
                     local_roots: tuple[str, ...] = ()) -> str:
    """A location written in an OBS field of a workflow (``OBSPath``, ``OBSOutputConfig``, a
    ``Storage`` default, ``code_dir``, a job input, an OBS placeholder's value) as an absolute
    path or URL: :func:`resolve_url`, plus ModelArts' ``/bucket/dir/`` notation.

    A path starting with a single ``/`` is read by ``absolute_paths``:

    * ``"auto"`` (default): a local path when its first segment (``/bucket``) is an existing
      local folder, else the OBS path ``obs://bucket/dir/`` (under ``obs_root``);
    * ``"obs"``: always the OBS path (write local folders as relative paths or ``file://`` URLs);
    * ``"local"``: always a local path; refused when its first segment does not exist, since
      mloop never creates folders at the file-system root.

    A path already inside ``obs_root`` or one of ``local_roots`` (mloop's own folders) is local in
    every mode, so resolving twice gives the same answer. This is the one function here that
    looks at the disk (one ``isdir`` of a top-level folder, in ``"auto"`` and ``"local"`` modes).

    Raises:
        ArtifactError: as :func:`resolve_url`; an unknown mode; ``"local"`` with a missing top folder.
    """
    if absolute_paths not in OBS_ABSOLUTE_MODES:
        raise ArtifactError(f"obs_absolute_paths is {absolute_paths!r}",
                            hint="set it to one of: " + ", ".join(OBS_ABSOLUTE_MODES))
    if (isinstance(path_or_url, str) and path_or_url.startswith("/") and not path_or_url.startswith("//")
            and not _inside(path_or_url, (obs_root, *local_roots), base_dir)):
        top = "/" + path_or_url.lstrip("/").split("/", 1)[0]
        if absolute_paths == "obs" or (absolute_paths == "auto" and not os.path.isdir(top)):
            return resolve_url(OBS_PROTOCOL + ":/" + path_or_url, obs_root=obs_root, base_dir=base_dir)
        if absolute_paths == "local" and top != "/" and not os.path.isdir(top):
            raise ArtifactError(f"{path_or_url}: the folder {top} does not exist, and mloop never creates "
                                "folders at the file-system root",
                                hint=f"create {top} first, or set obs_absolute_paths = \"auto\" to read "
                                     f"{path_or_url} as an OBS path under the obs root", url=path_or_url)
    return resolve_url(path_or_url, obs_root=obs_root, base_dir=base_dir)


def _inside(path: str, roots: tuple[str, ...], base_dir: str) -> bool:
    norm = os.path.normpath(path)
    for root in roots:
        if not root or not is_local(root):
            continue
        full = os.path.normpath(local_path(resolve_url(root, obs_root=root, base_dir=base_dir)) or root)
        if norm == full or norm.startswith(full.rstrip(os.sep) + os.sep):
            return True
    return False


def _resolve_obs(url: str, rest: str, trailing: bool, *, obs_root: str, base_dir: str) -> str:
    if split_protocol(obs_root)[0] == OBS_PROTOCOL:
        raise ArtifactError(
            f"obs_root is set to {obs_root}, which is itself an obs:// URL",
            hint="set MLOOP_OBS_ROOT to a folder or an s3:// URL of your S3-compatible store",
            url=url,
        )
    key = _relative_key(rest, what=url)
    if not key:
        raise ArtifactError(f"{url} names no bucket", hint="write obs://<bucket>/<path>", url=url)
    root = resolve_url(obs_root, obs_root=obs_root, base_dir=base_dir).rstrip("/" + os.sep)
    sep = "/" if split_protocol(root)[0] is not None else os.sep
    joined = root + sep + key.replace("/", sep)
    return joined + sep if trailing else joined


def _relative_key(key: str, *, what: str) -> str:
    """Normalise a ``/``-separated relative key; refuse one that leaves its root."""
    if split_protocol(key)[0] is not None or key.startswith(("/", "\\")) or os.path.isabs(key):
        raise ArtifactError(f"'{key}' must be a relative path ({what})", hint="drop the leading / or scheme")
    norm = posixpath.normpath(key.replace("\\", "/")) if key.strip("/") else ""
    if norm == ".":
        return ""
    if norm == ".." or norm.startswith("../"):
        raise ArtifactError(f"'{key}' climbs out of its root with '..' ({what})",
                            hint="use a path inside the root")
    return norm


def is_local(url: str) -> bool:
    """Whether ``url`` is on the local disk: a plain path or a ``file://``/``local://`` URL."""
    protocol, _ = split_protocol(url)
    return protocol is None or (protocol in _LOCAL_PROTOCOLS and "::" not in url)


def local_path(url: str) -> str | None:
    """The OS path for a local location, or ``None`` for anything remote.

    ``file:///abs/x`` and ``file://localhost/abs/x`` give ``/abs/x``; a plain path is returned
    as it is (call :func:`resolve_url` first to make it absolute). A trailing ``/`` is kept.
    """
    if not is_local(url):
        return None
    protocol, rest = split_protocol(url)
    if protocol is None:
        return url
    if rest.startswith("localhost/"):
        rest = rest[len("localhost"):]
    if os.name == "nt" and re.match(r"^/[A-Za-z]:", rest):
        rest = rest[1:]  # file:///C:/x -> C:/x
    return rest
