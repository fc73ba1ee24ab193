"""One settings object, read once at the entry point (CLI, server, SDK verb) and passed down.

Values come from, highest first: explicit keyword arguments, ``MLOOP_*`` environment
variables, a TOML config file (``MLOOP_CONFIG``, else the project's ``mloop.toml`` if present;
keys at top level or under ``[mloop]``), then the defaults below. With nothing configured,
everything works locally under ``.mloop/`` of the project folder: the current folder or the
nearest one above it holding a ``.mloop/`` or a ``mloop.toml``, as git finds its repository
(none: ``./.mloop/``).

The engine never reads ``os.environ`` itself.
"""

from __future__ import annotations

import json
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from mloop.durations import duration_seconds
from mloop.errors import ConfigError, UnknownFlavorError

#: Prefix of the environment variables that set fields (matched case-insensitively).
ENV_PREFIX = "MLOOP_"


class Flavor(BaseModel):
    """What a resource flavor id means on this installation."""

    cpu: float = Field(1.0, description="CPU cores requested")
    gpu: int = Field(0, description="GPUs requested")
    memory_gb: float = Field(2.0, description="memory requested, GiB")
    resources: dict[str, float] = Field(default_factory=dict,
                                        description="custom cluster resources requested (Ray), e.g. {special = 1}")
    description: str = ""


class NotifySpec(BaseModel):
    """A subscription declared in settings (``[[notify]]`` in mloop.toml): it works with no
    server, so a CI run notifies. ``events`` takes full names (``run_failed``) or short ones
    (``failed``); none: how runs (or, with ``step``, the step) end or wait."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    name: str = Field(min_length=1, max_length=64, description="unique name of the subscription")
    workflow: str | None = Field(None, description="only this workflow's runs (default: every workflow)")
    step: str | None = Field(None, description="only this step's events")
    events: list[str] = Field(default_factory=list, description="event names (default: run ends and waits)")
    channel: Literal["webhook", "slack", "email"] = Field(description="webhook, slack or email")
    target: str = Field(description="URL (webhook, slack) or comma-separated e-mail addresses")
    secret: str | None = Field(None, description="HMAC-SHA256 key signing webhook bodies")
    enabled: bool = True

    @field_validator("events", mode="after")
    @classmethod
    def _known_events(cls, value: list[str], info: Any) -> list[str]:
        from mloop.notify.rules import normalize_events

        return normalize_events(value, step=info.data.get("step"))

    @field_validator("target", mode="after")
    @classmethod
    def _good_target(cls, value: str, info: Any) -> str:
        from mloop.notify.rules import check_target

        channel = info.data.get("channel")
        return check_target(channel, value) if channel else value


#: Default flavor table: local CPU-only entries plus the ModelArts ids seen in the seeds,
#: so copied ModelArts code validates and runs. GPU entries run on CPU when no GPU exists.
DEFAULT_FLAVORS: dict[str, Flavor] = {
    "cpu.small": Flavor(cpu=1, memory_gb=2, description="1 CPU core, 2 GiB"),
    "cpu.medium": Flavor(cpu=2, memory_gb=4, description="2 CPU cores, 4 GiB"),
    "cpu.large": Flavor(cpu=4, memory_gb=8, description="4 CPU cores, 8 GiB"),
    "gpu.1": Flavor(cpu=4, gpu=1, memory_gb=16, description="1 GPU"),
    "modelarts.vm.cpu.2u": Flavor(cpu=2, memory_gb=8, description="ModelArts alias: 2 vCPUs"),
    "modelarts.vm.cpu.8u": Flavor(cpu=8, memory_gb=32, description="ModelArts alias: 8 vCPUs"),
    "modelarts.p3.large.public.free": Flavor(cpu=8, gpu=1, memory_gb=64, description="ModelArts alias: 1 GPU (free tier)"),
    "modelarts.pool.visual.xlarge": Flavor(cpu=8, gpu=1, memory_gb=64, description="ModelArts pool alias: 1 card"),
    "modelarts.pool.visual.2xlarge": Flavor(cpu=16, gpu=2, memory_gb=128, description="ModelArts pool alias: 2 cards"),
    "modelarts.pool.visual.4xlarge": Flavor(cpu=32, gpu=4, memory_gb=256, description="ModelArts pool alias: 4 cards"),
    "modelarts.pool.visual.8xlarge": Flavor(cpu=64, gpu=8, memory_gb=512, description="ModelArts pool alias: 8 cards"),
}


class SparkCluster(BaseModel):
    """What a MrsJobStep's ``cluster_id`` means on this installation: where ``spark-submit``
    sends the job (``[mloop.spark_clusters.<id>]`` in mloop.toml)."""

    model_config = ConfigDict(extra="forbid")

    master: str = Field(pattern=r"^(local(\[(\*|\d+)(,\d+)?\])?|yarn|spark://\S+|k8s://\S+|mesos://\S+)$",
                        description="spark-submit --master: local[*], local[N], spark://host:7077, yarn, k8s://...")
    conf: dict[str, str | int | float | bool] = Field(default_factory=dict,
                                                      description="spark-submit --conf key=value pairs")
    description: str = ""


HOME_DIR = ".mloop"
CONFIG_FILE = "mloop.toml"


def find_project(start: Path | None = None) -> Path | None:
    """The folder whose home a command uses, found as git finds its repository: the current
    folder or the nearest one above it holding a ``.mloop/`` folder or a ``mloop.toml``
    (up to ``/``). None: there is none (the home is then ``./.mloop``, made on first use)."""
    here = (start or Path.cwd()).absolute()
    for folder in (here, *here.parents):
        try:
            if (folder / HOME_DIR).is_dir() or (folder / CONFIG_FILE).is_file():
                return folder
        except OSError:  # a folder above we may not look into
            return None
    return None


def _toml_values(fields: typing.Collection[str]) -> dict[str, Any]:
    """The fields set in ``mloop.toml`` (or the file named by ``MLOOP_CONFIG``): the one of the
    project folder (:func:`find_project`), whose relative ``home`` is taken from that folder."""
    named = os.environ.get("MLOOP_CONFIG")
    project = None if named else find_project()
    path = Path(named) if named else (project or Path()) / CONFIG_FILE
    if named and not path.is_file():
        raise ConfigError(f"MLOOP_CONFIG names {path}, which does not exist",
                          hint="fix the path or unset MLOOP_CONFIG")
    if not path.is_file():
        return {}
    import tomllib  # here: most commands run where there is no mloop.toml

    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    table = dict(raw.get("mloop", raw))
    if "mloop" in raw and isinstance(raw.get("notify"), list):
        table.setdefault("notify", raw["notify"])  # [[notify]] tables beside an [mloop] table
    unknown = [k for k in table if k not in fields and k != "mloop"]
    if unknown:
        # A typo'd key would otherwise run on the defaults without a word (database_url!).
        import difflib

        lines = []
        for key in unknown:
            close = difflib.get_close_matches(key, list(fields), n=1)
            lines.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(f"{path}: unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(lines)}",
                          hint=f"settings: {', '.join(sorted(fields))}")
    home = table.get("home")
    if project is not None and isinstance(home, str) and not Path(home).expanduser().is_absolute():
        table["home"] = str(project / home)  # relative to the mloop.toml, not to a subfolder
    return table


def _is_structured(annotation: Any) -> bool:
    """Whether a field holds a table or a list, so its environment value is JSON text."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_structured(arg) for arg in typing.get_args(annotation) if arg is not type(None))
    if origin is not None:
        annotation = origin
    return isinstance(annotation, type) and issubclass(annotation, (dict, list, tuple, set, frozenset, BaseModel))


def _env_values(model: type[BaseModel]) -> dict[str, Any]:
    """The fields set as ``MLOOP_<FIELD>`` environment variables; tables and lists as JSON."""
    prefix = ENV_PREFIX.lower()
    found = {k.lower(): v for k, v in os.environ.items() if k.lower().startswith(prefix)}
    values: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        env_name = prefix + name.lower()
        if env_name not in found:
            continue
        value: Any = found[env_name]
        if _is_structured(field.annotation):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise ConfigError(f"{env_name.upper()} is not valid JSON: {exc}",
                                  hint=f"give {name} as a JSON object or list, or unset {env_name.upper()}") from exc
        values[name] = value
    return values


def _deep_update(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``update``, merging tables found in both rather than replacing them."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(merged.get(key), dict) and isinstance(value, dict):
            merged[key] = _deep_update(merged[key], value)
        else:
            merged[key] = value
    return merged


def _config_error(exc: ValidationError, toml: dict[str, Any], env: dict[str, Any],
                  given: dict[str, Any]) -> ConfigError:
    """A settings value pydantic refused, as one line per key naming where it came from."""
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ())]
        key = loc[0] if loc else "?"
        where = ("given in code" if key in given else f"MLOOP_{key.upper()}" if key in env
                 else "mloop.toml" if key in toml else "default")
        lines.append(f"{'.'.join(loc)} = {error.get('input')!r} ({where}): {error.get('msg')}")
    return ConfigError("bad setting" + ("s" if len(lines) > 1 else "") + ":\n  " + "\n  ".join(lines),
                       hint="fix the value, or unset it to use the default (`mloop --help` names the commands; "
                            "README 'Configuration' lists the settings)")


class Settings(BaseModel):
    """mloop settings. Every field can be set as ``MLOOP_<FIELD>`` in the environment.

    Keyword arguments win over the environment, which wins over the TOML file (tables such as
    ``flavors`` are merged across the three). A key in the TOML file that is no setting is
    refused with the closest one (other ``MLOOP_*`` variables are left alone: jobs and services
    have their own); a bad value is a ConfigError naming the key and where it came from. This is what
    pydantic-settings would do with these three sources, without its import cost (~0.1 s,
    paid by every ``mloop`` command).
    """

    model_config = ConfigDict(extra="ignore", validate_default=True)
    _found_home: Path | None = PrivateAttr(None)

    home: Path = Field(Path(".mloop"), description="folder for the local database, artifacts and run files")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default sqlite:///<home>/mloop.db")
    artifact_root: str | None = Field(None, description="fsspec URL or folder for artifacts (s3://bucket/prefix; "
                                                        "obs://bucket/prefix is the same); default <home>/artifacts")
    obs_root: str | None = Field(
        None, description="where obs://bucket/path URLs are stored; default <artifact_root>/obs"
    )
    obs_absolute_paths: Literal["auto", "local", "obs"] = Field(
        "auto", description="how a /bucket/dir/ path in an OBS field (OBSPath, OBSOutputConfig, Storage default, "
                            "code_dir) is read: auto = local when /bucket is an existing folder, else under "
                            "obs_root; obs = always under obs_root; local = always local")
    s3_endpoint_url: str | None = Field(None, pattern=r"^https?://[^\s/]+(/\S*)?$", description="S3-compatible store (MinIO, OBS, Ceph): http(s)://host"
                                                          "[:port]; default AWS (or AWS_ENDPOINT_URL_S3)")
    s3_region: str | None = Field(None, description="S3 region; default AWS_REGION / AWS_DEFAULT_REGION / ~/.aws")
    s3_access_key_id: str | None = Field(None, description="S3 key for this process; better AWS_ACCESS_KEY_ID, "
                                                           "which jobs inherit (default: the AWS chain)")
    s3_secret_access_key: str | None = Field(None, description="its secret; better AWS_SECRET_ACCESS_KEY (never "
                                                               "in mloop.toml)")
    s3_max_attempts: int = Field(10, ge=1, description="tries of one S3 request on transient errors (throttling, "
                                                      "5xx, dropped connections), with backoff")
    s3_part_size_mb: int = Field(16, ge=5, description="S3 multipart part size, MiB: files of twice this go up in "
                                                      "parallel parts, large downloads in ranges of it")
    s3_concurrency: int = Field(8, ge=1, description="S3 parts or ranges of one file moving at the same time")
    keep_workdir_patterns: list[str] = Field(
        default_factory=lambda: ["artefacts/", "outputs/"],
        description="files a job writes into its working folder that are kept as step artifacts without a "
                    "declared output: 'name/' is a folder, anything else a path or glob (empty list: none)")
    env_find_links: list[str] = Field(
        default_factory=list, description="folders or URLs of wheels per-job environments install from first "
                                          "(uv --find-links); a torch requirement a wheel there satisfies is "
                                          "installed from it, e.g. a local CPU build in /opt/wheels")
    env_index_url: str | None = Field(None, description="package index per-job environments install from "
                                                        "(uv --index-url); default PyPI")
    env_reuse_engine: bool = Field(True, description="run a job whose requirements.txt the engine's own "
                                                     "interpreter already satisfies there, without an environment")
    env_expiry: str = Field("30d", description="`mloop gc` removes a per-job environment (<home>/envs/<key>) "
                                             "that no job has used for this long and none is using now: 90s, "
                                             "30m, 12h, 7d, 2w or never (a later job needing it builds it again)")
    engines: dict[str, list[str]] = Field(
        default_factory=dict, description="JobEngine(engine_name, engine_version) -> requirements of its "
                                          "environment, keyed 'name==version' (or 'name' for any version)")
    allow_apt_install: bool = Field(False, description="let a job's apt-pkgs.txt install missing Debian packages "
                                                       "(apt-get, as root or with sudo -n); off: refused")
    executor: Literal["local", "ray"] = Field("local", description="where job processes run")
    ray_address: str | None = Field(None, description="the Ray cluster of the ray executor: auto or host:port "
                                                      "(MLOOP_RAY_ADDRESS); none: mloop run starts a local one")
    max_parallel: int = Field(4, ge=1, description="how many steps of one run may run at the same time")
    flavors: dict[str, Flavor] = Field(default_factory=lambda: dict(DEFAULT_FLAVORS),
                                       description="resource flavor table (id -> cpu/gpu/memory)")
    step_cache: bool = Field(True, description="reuse the outputs and metrics of an earlier succeeded job step "
                                                "with the same code, inputs, parameters, environment and flavor "
                                                "instead of running it (off per run: mloop run --no-cache)")
    cache_expiry: str = Field("7d", description="how long a step's result may be reused: 90s, 30m, 12h, 7d, 2w "
                                               "or never (a step's StepPolicy(cache_expiry=...) wins)")
    spark_clusters: dict[str, SparkCluster] = Field(
        default_factory=dict, description="MrsJobStep cluster_id -> Spark master and --conf options; an id not "
                                          "listed runs in local[*] on the job's machine")
    spark_home: str | None = Field(None, description="Spark installation MrsJobSteps submit with (its "
                                                     "bin/spark-submit); default $SPARK_HOME, else pyspark's")
    log_tail_lines: int = Field(20, ge=0, description="log lines shown when a step fails")
    stop_grace_seconds: float = Field(5.0, ge=0, description="SIGTERM-to-SIGKILL grace period on stop")
    heartbeat_seconds: float = Field(5.0, gt=0, description="how often a server or worker engine records in the "
                                                            "store that it is alive; after 3 missed beats another "
                                                            "engine takes its running runs over")
    max_image_pixels: int = Field(100_000_000, ge=1,
                                  description="most pixels (width x height) an image may declare: larger ones are "
                                              "refused by dataset imports before decoding (decompression bombs)")
    server_url: str | None = Field(None, description="mloop server URL (client mode); unset = embedded")
    token: str | None = Field(None, description="API token for the server")
    notify: list[NotifySpec] = Field(default_factory=list,
                                     description="subscriptions declared here ([[notify]] tables), no server needed")
    smtp_host: str | None = Field(None, description="SMTP server that sends e-mail notifications")
    smtp_port: int | None = Field(None, description="its port; default 587 (starttls), 465 (ssl) or 25 (none)")
    smtp_user: str | None = Field(None, description="SMTP login (unset: no login)")
    smtp_password: str | None = Field(None, description="SMTP password (better as MLOOP_SMTP_PASSWORD)")
    smtp_from: str | None = Field(None, description="sender address; default <smtp_user> or mloop@<host>")
    smtp_security: Literal["starttls", "ssl", "none"] = Field("starttls", description="starttls, ssl or none")

    def __init__(self, **values: Any) -> None:
        fields = type(self).model_fields
        by_lower = {name.lower(): name for name in fields}
        given = {by_lower.get(k.lower(), k): v for k, v in values.items()}
        toml, env = _toml_values(fields), _env_values(type(self))
        merged = _deep_update(_deep_update(toml, env), given)
        found = None
        if "home" not in merged:  # neither given, nor MLOOP_HOME, nor in mloop.toml: look upwards
            project = find_project()
            if project is not None:
                found = project / HOME_DIR
                merged["home"] = found
        try:
            super().__init__(**merged)
        except ValidationError as exc:
            raise _config_error(exc, toml, env, given) from None
        self._found_home = found

    @property
    def home_found_above(self) -> Path | None:
        """The home found in a folder above the current one (see :func:`find_project`), if it
        was; None when the home is the current folder's or was set explicitly."""
        found = self._found_home
        if found is None or found.parent == Path.cwd().absolute():
            return None
        return found

    @field_validator("cache_expiry", "env_expiry", mode="after")
    @classmethod
    def _a_duration(cls, value: str) -> str:
        duration_seconds(value)
        return value

    @field_validator("flavors", mode="before")
    @classmethod
    def _merge_flavors(cls, value: Any) -> Any:
        # A configured table extends the defaults rather than replacing them.
        if isinstance(value, dict):
            merged: dict[str, Any] = {k: v.model_dump() for k, v in DEFAULT_FLAVORS.items()}
            merged.update(value)
            return merged
        return value

    # -- derived locations ------------------------------------------------------------------
    @property
    def home_path(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_path / 'mloop.db'}"

    @property
    def resolved_artifact_root(self) -> str:
        root = self.artifact_root or str(self.home_path / "artifacts")
        if root[:6].lower() == "obs://":  # ModelArts' name for the same S3-compatible store
            return "s3://" + root[6:]
        return root

    @property
    def resolved_obs_root(self) -> str:
        return self.obs_root or (self.resolved_artifact_root.rstrip("/") + "/obs")

    def flavor(self, flavor_id: str) -> Flavor:
        """Look up a flavor id.

        Raises:
            UnknownFlavorError: the id is not in the table; the message lists the known ids.
        """
        try:
            return self.flavors[flavor_id]
        except KeyError:
            known = ", ".join(sorted(self.flavors))
            raise UnknownFlavorError(
                f"unknown resource flavor '{flavor_id}'",
                hint=f"use one of: {known}; or add it under [mloop.flavors] in mloop.toml",
                flavor=flavor_id,
            ) from None
