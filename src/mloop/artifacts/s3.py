"""S3-compatible object stores (AWS S3, MinIO, Huawei OBS, Ceph, moto): how s3fs is opened.

One :class:`S3Options` says where the store is and how to talk to it: the endpoint (none:
AWS itself, or botocore's own ``AWS_ENDPOINT_URL_S3``), the region, retries on transient
errors (botocore's ``standard`` mode: throttling, 5xx, dropped connections, with backoff), the
multipart part size and how many parts move at once.

Where the options come from:

* an engine, server or CLI process: the settings (``s3_*`` fields, ``MLOOP_S3_*`` variables,
  ``mloop.toml``), registered once as the process's defaults by :func:`configure_from_settings`
  when its artifact store opens, so every ``filesystem_for("s3://...")`` of that process uses
  them;
* a job process (the runner, a training script using ``moxing``): the ``MLOOP_S3_*`` variables
  its engine put in its environment (:func:`job_environment`), read by :func:`from_environ`.

Credentials are never in :func:`job_environment` (a job's request travels on a command line):
jobs, like the engine, find them where every AWS tool does (``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``, ``~/.aws``). The settings'
``s3_access_key_id`` / ``s3_secret_access_key`` serve the process that read them, and a job
inherits them only as environment variables (``MLOOP_S3_ACCESS_KEY_ID``, set by the user).
Nothing here logs or shows a secret: :class:`S3Options`' repr hides them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from mloop.errors import ConfigError

if TYPE_CHECKING:
    from mloop.config import Settings

__all__ = ["ENV", "S3Options", "configure_from_settings", "from_environ", "job_environment"]

log = logging.getLogger(__name__)

#: The environment variable of each field (the same names the settings read).
ENV: dict[str, str] = {
    "endpoint_url": "MLOOP_S3_ENDPOINT_URL",
    "region": "MLOOP_S3_REGION",
    "access_key_id": "MLOOP_S3_ACCESS_KEY_ID",
    "secret_access_key": "MLOOP_S3_SECRET_ACCESS_KEY",
    "max_attempts": "MLOOP_S3_MAX_ATTEMPTS",
    "part_size_mb": "MLOOP_S3_PART_SIZE_MB",
    "concurrency": "MLOOP_S3_CONCURRENCY",
}
_SECRET = frozenset({"access_key_id", "secret_access_key"})

#: S3 refuses multipart parts under 5 MiB (except the last one).
MIN_PART_MB = 5


@dataclass(frozen=True)
class S3Options:
    """How to reach an S3-compatible store.

    Attributes:
        endpoint_url: ``http(s)://host[:port]`` of the store; ``None`` for AWS (or botocore's
            ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``).
        region: the signing region; ``None``: ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` / ``~/.aws``.
        access_key_id: a key for this process only; ``None``: the standard AWS chain.
        secret_access_key: its secret.
        max_attempts: tries of one request before a transient error is given up on.
        part_size_mb: multipart part size; files of twice this size or more go up in parts,
            and downloads of large objects are split into ranges of this size.
        concurrency: parts (or ranges) moving at the same time for one file.
    """

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    max_attempts: int = 10
    part_size_mb: int = 16
    concurrency: int = 8

    def __post_init__(self) -> None:
        if self.endpoint_url is not None and not self.endpoint_url.startswith(("http://", "https://")):
            raise ConfigError(f"s3_endpoint_url is {self.endpoint_url!r}, which is not an http(s) URL",
                              hint="write it as http://host:port or https://host, e.g. http://127.0.0.1:9000")
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ConfigError("only one of s3_access_key_id and s3_secret_access_key is set",
                              hint="set both, or neither to use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws")
        if self.max_attempts < 1:
            raise ConfigError(f"s3_max_attempts is {self.max_attempts}", hint="set it to 1 or more")
        if self.part_size_mb < MIN_PART_MB:
            raise ConfigError(f"s3_part_size_mb is {self.part_size_mb}, and S3 needs parts of at least "
                              f"{MIN_PART_MB} MiB", hint=f"set it to {MIN_PART_MB} or more")
        if self.concurrency < 1:
            raise ConfigError(f"s3_concurrency is {self.concurrency}", hint="set it to 1 or more")

    @property
    def part_size(self) -> int:
        """The part size in bytes."""
        return self.part_size_mb << 20

    def storage_options(self) -> dict[str, Any]:
        """Keyword arguments for ``s3fs.S3FileSystem`` (they may hold credentials: don't log them)."""
        options: dict[str, Any] = {
            # botocore's retries: throttling, 5xx and connection errors, with exponential backoff.
            # (s3fs adds its own loop of 5 tries around each call for dropped connections.)
            "config_kwargs": {"retries": {"max_attempts": self.max_attempts, "mode": "standard"}},
            # Another machine writes to the same bucket: a cached listing would hide its new
            # packs and versions from this process for as long as it lives.
            "use_listings_cache": False,
            "default_block_size": self.part_size,
            "max_concurrency": self.concurrency,
        }
        if self.endpoint_url:
            options["endpoint_url"] = self.endpoint_url
        if self.region:
            options["client_kwargs"] = {"region_name": self.region}
        if self.access_key_id:
            options["key"], options["secret"] = self.access_key_id, self.secret_access_key
        return options


def _from_values(values: Mapping[str, Any]) -> S3Options:
    known = {f.name for f in fields(S3Options)}
    return S3Options(**{k: v for k, v in values.items() if k in known and v is not None})


def from_environ(environ: Mapping[str, str] | None = None) -> S3Options:
    """The options a job's engine gave it in ``MLOOP_S3_*`` variables (see :func:`job_environment`).

    Raises:
        ConfigError: a number is not a number, or a value is out of range.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, var in ENV.items():
        raw = env.get(var)
        if raw is None or raw == "":
            continue
        if name in ("max_attempts", "part_size_mb", "concurrency"):
            try:
                values[name] = int(raw)
            except ValueError:
                raise ConfigError(f"{var} is {raw!r}, not a whole number", hint=f"set {var} to a number") from None
        else:
            values[name] = raw
    return _from_values(values)


def options_from_settings(settings: Settings) -> S3Options:
    """The :class:`S3Options` the settings describe (their ``s3_*`` fields)."""
    return _from_values({name: getattr(settings, "s3_" + name, None) for name in ENV})


def job_environment(settings: Settings) -> dict[str, str]:
    """The ``MLOOP_S3_*`` variables a job needs to reach the store the settings name.

    Only what is not secret (endpoint, region, retries, part size, concurrency): a job's
    request may travel on a command line. Credentials reach a job through the environment it
    inherits (``AWS_*``, ``MLOOP_S3_ACCESS_KEY_ID``) or ``~/.aws``.
    """
    opts = options_from_settings(settings)
    env = {var: str(getattr(opts, name)) for name, var in ENV.items()
           if name not in _SECRET and getattr(opts, name) is not None}
    return env


def configure_from_settings(settings: Settings) -> dict[str, Any]:
    """Make the settings' S3 options this process's defaults for ``s3://`` filesystems.

    Called where an entry point opens its artifact store; a filesystem opened later without
    explicit options (``filesystem_for(url)``) gets these.

    Returns:
        The storage options registered (they may hold credentials: don't log them).
    """
    from mloop.artifacts.filesystems import set_default_storage_options

    opts = options_from_settings(settings)
    if opts.access_key_id and not os.environ.get(ENV["secret_access_key"]):
        log.warning("the S3 secret key comes from a settings file or code: this process uses it, but jobs "
                    "don't receive it. Better: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment, "
                    "or a profile in ~/.aws")
    options = opts.storage_options()
    set_default_storage_options("s3", options)
    return options
