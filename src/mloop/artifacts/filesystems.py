"""The scheme registry and the one place where fsspec and OS errors become mloop errors.

Backends are imported lazily: ``s3://`` costs nothing until it is used, and when its
package is missing the error names the ``pip install`` line instead of an ImportError
from deep inside fsspec. Protocols mloop has no entry for but fsspec knows (``gs``,
``az``, ``sftp`` …) are passed through to fsspec.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import fsspec
from fsspec.registry import known_implementations
from fsspec.spec import AbstractFileSystem

from mloop.artifacts.urls import OBS_PROTOCOL, split_protocol
from mloop.errors import ArtifactError, MissingExtraError, MloopError

__all__ = ["Backend", "backend_for", "default_storage_options", "filesystem_for", "known_protocols",
           "set_default_storage_options", "translate_errors"]


@dataclass(frozen=True)
class Backend:
    """What mloop knows about one storage protocol.

    Attributes:
        protocols: the URL schemes it serves; the first is the canonical one.
        package: the module that must be importable, or ``None`` when fsspec has it built in.
        extra: the ``mloop[...]`` extra that installs ``package``.
        atomic_put: one ``pipe_file``/``put_file`` call makes the object appear whole or
            not at all (object stores), so atomic writes need no temporary name, and a
            "move" would be a server-side copy plus a delete.
        has_dirs: folders exist on their own (an empty folder can be made and listed);
            false for object stores, where a folder is only a key prefix.
    """

    protocols: tuple[str, ...]
    package: str | None = None
    extra: str | None = None
    atomic_put: bool = False
    has_dirs: bool = True


_BACKENDS: tuple[Backend, ...] = (
    Backend(("file", "local")),
    Backend(("memory",)),
    Backend(("s3", "s3a"), package="s3fs", extra="s3", atomic_put=True, has_dirs=False),
)
_BY_PROTOCOL: dict[str, Backend] = {p: b for b in _BACKENDS for p in b.protocols}
# Object stores fsspec serves through packages mloop has no extra for (yet): their writes
# are atomic per object too, and a server-side "move" is a copy plus a delete.
_ATOMIC_OBJECT_STORES = frozenset({"gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "oci", "tos"})


# The storage options a filesystem gets when its caller passes none, by canonical protocol:
# set once by the entry point from its settings (see mloop.artifacts.s3.configure_from_settings).
_DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {}


def set_default_storage_options(protocol: str, options: Mapping[str, Any] | None) -> None:
    """Make ``options`` the storage options of every ``protocol`` filesystem this process opens
    without explicit ones (``None`` forgets them). Aliases of the protocol (``s3a``) share them."""
    canonical = backend_for(protocol).protocols[0]
    if options is None:
        _DEFAULT_OPTIONS.pop(canonical, None)
    else:
        _DEFAULT_OPTIONS[canonical] = dict(options)


def default_storage_options(protocol: str) -> dict[str, Any]:
    """The options a ``protocol`` filesystem is opened with when the caller gives none.

    Those registered by :func:`set_default_storage_options`; for ``s3`` in a process that
    registered none (a job), those of the ``MLOOP_S3_*`` variables its engine passed on.
    """
    canonical = backend_for(protocol).protocols[0]
    if canonical in _DEFAULT_OPTIONS:
        return dict(_DEFAULT_OPTIONS[canonical])
    if canonical == "s3":
        from mloop.artifacts.s3 import from_environ

        return from_environ().storage_options()
    return {}


def known_protocols() -> list[str]:
    """Every scheme a filesystem can be opened for: mloop's table plus fsspec's."""
    return sorted(set(_BY_PROTOCOL) | set(known_implementations))


def backend_for(protocol: str) -> Backend:
    """The :class:`Backend` entry for a scheme; fsspec-only schemes get a generic entry."""
    if protocol in _BY_PROTOCOL:
        return _BY_PROTOCOL[protocol]
    if protocol in _ATOMIC_OBJECT_STORES:
        return Backend((protocol,), atomic_put=True, has_dirs=False)
    return Backend((protocol,))


def filesystem_for(url: str, storage_options: Mapping[str, Any] | None = None) -> AbstractFileSystem:
    """Open (or reuse, fsspec caches instances) the filesystem that serves ``url``.

    Args:
        url: a plain path or a URL; plain paths are served by the local filesystem.
        storage_options: keyword arguments for the filesystem (credentials, endpoint).

    Returns:
        The fsspec filesystem.

    Raises:
        MissingExtraError: the backend's package is not installed (hint: the pip line).
        ArtifactError: the scheme is unknown (the message lists the known ones), or the
            URL is an unresolved ``obs://`` alias, or the filesystem refused to start.
    """
    protocol, _ = split_protocol(url)
    if protocol is None:
        protocol = "file"
    if storage_options is None and protocol != OBS_PROTOCOL:
        storage_options = default_storage_options(protocol)
    if "::" in url:
        # Chained URLs (simplecache::s3://...) are opened by fsspec as a whole.
        with translate_errors(url, "open the filesystem for"):
            fs, _ = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
        return fs
    if protocol == OBS_PROTOCOL:
        raise ArtifactError(
            f"{url} is an obs:// alias that was not resolved",
            hint="pass it through mloop.artifacts.resolve_url(url, obs_root=settings.resolved_obs_root, ...)",
            url=url,
        )
    backend = _BY_PROTOCOL.get(protocol)
    if backend is None and protocol not in known_implementations:
        raise ArtifactError(
            f"unknown storage protocol '{protocol}://' in {url}",
            hint=(
                "use a plain path or one of mloop's: " + ", ".join(p + "://" for p in sorted(_BY_PROTOCOL))
                + "; fsspec also knows: " + ", ".join(sorted(set(known_implementations) - set(_BY_PROTOCOL)))
            ),
            url=url,
            protocol=protocol,
        )
    if backend is not None and backend.package and importlib.util.find_spec(backend.package) is None:
        raise MissingExtraError(backend.package, backend.extra or backend.package)
    try:
        return fsspec.filesystem(protocol, **dict(storage_options or {}))
    except ImportError as exc:
        if backend is not None and backend.package:
            raise MissingExtraError(backend.package, backend.extra or backend.package) from exc
        raise ArtifactError(
            f"cannot open {protocol}:// storage: {exc}",
            hint="install the package named above into the same environment as mloop",
            url=url,
            protocol=protocol,
        ) from exc
    except (OSError, ValueError, TypeError) as exc:
        raise ArtifactError(
            f"cannot open {protocol}:// storage for {url}: {exc}",
            hint="check the storage options (credentials, endpoint, region)",
            url=url,
            protocol=protocol,
        ) from exc


_MESSAGES: tuple[tuple[type[BaseException], str, str], ...] = (
    (FileNotFoundError, "it does not exist",
     "check the path; artifact URLs are relative to the configured artifact root"),
    (FileExistsError, "something is already there", "remove it first or choose another name"),
    (IsADirectoryError, "it is a folder, not a file", "use the folder functions (put_dir/get_dir/list)"),
    (NotADirectoryError, "a part of the path is a file, not a folder", "check the path"),
    (PermissionError, "permission denied",
     "check file permissions, or the storage credentials (for s3://: AWS_* variables or ~/.aws)"),
)


@contextmanager
def translate_errors(url: str, action: str) -> Iterator[None]:
    """Re-raise OS/fsspec errors inside the block as :class:`ArtifactError` naming ``url``.

    Errors of the S3 client (botocore, aiohttp) that survived its retries become an
    ``ArtifactError`` too; mloop's own errors and anything else (a user callback's own
    exception, a bug) pass through unchanged.

    Args:
        url: the location being worked on, as the user wrote it.
        action: what was being done, phrased to follow "cannot" (``"read"``, ``"write"``).
    """
    try:
        yield
    except MloopError:
        raise
    except Exception as exc:
        if isinstance(exc, OSError):
            raise _translated(exc, url, action) from exc
        if type(exc).__module__.startswith(("botocore", "aiobotocore", "aiohttp")):
            # Reached after botocore's and s3fs's retries: the endpoint is down, refused the
            # connection, or answered something that is not S3.
            raise ArtifactError(
                f"cannot {action} {url}: the object store failed: {type(exc).__name__}: {_first_line(exc)}",
                hint="check that the S3 endpoint is up and right (s3_endpoint_url / MLOOP_S3_ENDPOINT_URL), "
                     "and the region and credentials (AWS_* variables or ~/.aws); then retry",
                url=url, action=action, reason=type(exc).__name__) from exc
        raise


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""


def _translated(exc: OSError, url: str, action: str) -> ArtifactError:
    what, hint = next(
        ((w, h) for kind, w, h in _MESSAGES if isinstance(exc, kind)),
        (exc.strerror or _first_line(exc) or type(exc).__name__,
         "check that the storage is reachable and has free space, then retry"),
    )
    return ArtifactError(f"cannot {action} {url}: {what}", hint=hint, url=url, action=action,
                         reason=type(exc).__name__)
