"""Artifact storage: every byte mloop moves goes through here.

* :func:`resolve_url` turns what a user wrote (relative paths, ``~``, ``obs://``) into an
  absolute path or fsspec URL; :func:`is_local` / :func:`local_path` tell local from remote.
* :class:`ArtifactStore` wraps one fsspec filesystem under a root URL: atomic writes,
  reads, folder copies in and out (job staging), listing, deletion, progress callbacks.
* :class:`S3Options` says how ``s3://`` (and ``obs://``) stores are reached: endpoint, region,
  retries, multipart part size; :func:`configure_from_settings` makes the settings' options
  the process's defaults, :func:`job_environment` hands them to a job (never credentials).
* :func:`hash_file`, :func:`hash_dir` and :func:`snapshot_dir` give content digests and
  immutable copies of a job's code folder.

fsspec and OS errors come out as :class:`~mloop.errors.ArtifactError`; a backend whose
package is missing raises :class:`~mloop.errors.MissingExtraError` with the pip line.

Layer: foundation (below everything that moves bytes; imports only errors).
"""

from mloop.artifacts.atomic import WriteStrategy
from mloop.artifacts.filesystems import filesystem_for, known_protocols
from mloop.artifacts.hashing import (
    DEFAULT_IGNORE,
    ManifestEntry,
    dir_manifest,
    hash_dir,
    hash_file,
    manifest_digest,
)
from mloop.artifacts.s3 import S3Options, configure_from_settings, job_environment
from mloop.artifacts.snapshot import snapshot_dir
from mloop.artifacts.store import ArtifactStore
from mloop.artifacts.urls import is_local, join_url, local_path, resolve_obs_path, resolve_url, split_protocol

__all__ = [
    "DEFAULT_IGNORE",
    "ArtifactStore",
    "ManifestEntry",
    "S3Options",
    "WriteStrategy",
    "configure_from_settings",
    "dir_manifest",
    "filesystem_for",
    "hash_dir",
    "hash_file",
    "is_local",
    "job_environment",
    "join_url",
    "known_protocols",
    "local_path",
    "manifest_digest",
    "resolve_obs_path",
    "resolve_url",
    "snapshot_dir",
    "split_protocol",
]
