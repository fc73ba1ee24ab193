"""The MLflow REST subset the Python client calls, framework-neutral.

:meth:`TrackingApi.call` takes ``(method, path under /api/2.0/mlflow/, query, body)`` and
returns ``(status, JSON object)``; errors are MLflow's ``{"error_code", "message"}`` with its
status (404 ``RESOURCE_DOES_NOT_EXIST``, 400 ``INVALID_PARAMETER_VALUE``, ...), never a 500 for
a bad request. Experiments are names: an experiment's id is its name (``"0"`` is ``Default``)
and every name exists (``experiments/create`` of a known name answers its id).

Also here: the live points endpoint (:meth:`TrackingApi.ingest`, the body
``{"points": [{"key", "value", "step", "timestamp"}, ...]}``) and the ``mlflow-artifacts``
proxy (:meth:`TrackingApi.put_artifact`, ...), whose paths are checked: relative, no ``..``,
no NUL, under an existing tracking run (``<tracking run id>/artifacts/...``).

NaN values are accepted and not stored (the points table holds numbers only).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from mloop.errors import ArtifactError, NotFoundError, StoreError

if TYPE_CHECKING:
    from mloop.artifacts import ArtifactStore
    from mloop.store.base import Store
    from mloop.store.tracking import TrackingRunRecord

__all__ = ["DEFAULT_EXPERIMENT", "StepTie", "TrackingApi", "WireError", "artifact_uri_for", "parse_points"]

#: Experiment ``"0"``, where MLflow puts runs when no experiment is named.
DEFAULT_EXPERIMENT = "Default"
_MAX_BATCH = 1_000_000
_MAX_VALUE_CHARS = 6000  # MLflow's limit for a param value (tags: 8000)
_MAX_KEY_CHARS = 250


class WireError(Exception):
    """An MLflow error answer: ``{"error_code": code, "message": message}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, str]:
        return {"error_code": self.code, "message": self.message}


def _bad(message: str) -> WireError:
    return WireError(400, "INVALID_PARAMETER_VALUE", message)


def _missing(message: str) -> WireError:
    return WireError(404, "RESOURCE_DOES_NOT_EXIST", message)


@dataclass(frozen=True)
class StepTie:
    """What a job's token ties new tracking runs to: its mloop run, step and attempt."""

    run_id: str
    step_name: str
    attempt: int = 1
    workflow: str = ""


def artifact_uri_for(tracking_run_id: str) -> str:
    """The artifact URI of a tracking run: the client resolves ``mlflow-artifacts:/`` against
    its tracking URI, so uploads go through the ``mlflow-artifacts`` proxy."""
    return f"mlflow-artifacts:/{tracking_run_id}/artifacts"


# -- values on the wire ------------------------------------------------------------------------

def _text(body: Mapping[str, Any], name: str, *, required: bool = True, limit: int = _MAX_VALUE_CHARS) -> str:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise _bad(f"Missing value for required parameter '{name}'")
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _bad(f"Invalid value {value!r} for parameter '{name}': a string is expected")
    text = str(value)
    if len(text) > limit:
        raise _bad(f"Parameter '{name}' is {len(text)} characters long, over the limit of {limit}")
    return text


def _integer(value: Any, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise _bad(f"Invalid value {value!r} for parameter '{name}': an integer is expected")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise _bad(f"Invalid value {value!r} for parameter '{name}': an integer is expected")


_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf, "inf": math.inf, "-inf": -math.inf,
            "nan": math.nan}


def _number(value: Any, name: str) -> float:
    if type(value) is float:
        return value
    if type(value) is int:
        return float(value)
    if isinstance(value, str):  # proto3 JSON: "NaN", "Infinity", or a number as text
        if value in _SPECIAL:
            return _SPECIAL[value]
        try:
            return float(value.strip()) if value.strip() else _SPECIAL["?"]
        except (ValueError, KeyError):
            pass
    raise _bad(f"Invalid value {value!r} for parameter '{name}' supplied: a number is expected")


def parse_points(items: Any, now_ms: int | None = None) -> list[tuple[str, float, int, int]]:
    """``[{"key", "value", "step"?, "timestamp"?}, ...]`` as ``(key, value, step, timestamp)``
    rows; NaN values are left out (the points table holds numbers).

    Raises:
        WireError: 400 ``INVALID_PARAMETER_VALUE`` naming the first bad point.
    """
    if not isinstance(items, list):
        raise _bad("'metrics' / 'points' must be a list of {key, value, step, timestamp} objects")
    if len(items) > _MAX_BATCH:
        raise _bad(f"{len(items)} points in one request; at most {_MAX_BATCH}")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    rows: list[tuple[str, float, int, int]] = []
    append = rows.append
    for i, item in enumerate(items):
        if type(item) is not dict:
            raise _bad(f"point {i} must be an object, got {type(item).__name__}")
        key, value = item.get("key"), item.get("value")
        if type(key) is not str or not key or len(key) > _MAX_KEY_CHARS:
            raise _bad(f"point {i}: 'key' must be a non-empty string of at most {_MAX_KEY_CHARS} characters")
        number = value if type(value) is float else _number(value, f"value of point {i} ({key})")
        step, stamp = item.get("step", 0), item.get("timestamp")
        if type(step) is not int:
            step = _integer(step, f"step of point {i} ({key})", 0)
        if type(stamp) is not int:
            stamp = _integer(stamp, f"timestamp of point {i} ({key})", now)
        if number != number:  # NaN
            continue
        append((key, number, step, stamp))
    return rows


def _tags(items: Any, what: str = "tags") -> dict[str, str]:
    if items is None:
        return {}
    if not isinstance(items, list):
        raise _bad(f"'{what}' must be a list of {{key, value}} objects")
    out: dict[str, str] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _bad(f"{what}[{i}] must be an object")
        key = _text(item, "key", limit=_MAX_KEY_CHARS)
        out[key] = _text(item, "value", required=False, limit=8000)
    return out


# -- the API -------------------------------------------------------------------------------------

Handler = Callable[["TrackingApi", Mapping[str, Any], "StepTie | None"], dict[str, Any]]


class TrackingApi:
    """MLflow's REST subset over a store (and an artifact store for the artifacts proxy)."""

    def __init__(self, store: Store, artifacts: ArtifactStore | None = None) -> None:
        self.store = store
        self.artifacts = artifacts
        self._known: set[str] = set()  # runs seen to exist (the logging hot paths skip a read)

    # ----- dispatch
    def call(self, method: str, path: str, query: Mapping[str, str] | None = None, body: bytes | Any = b"",
             tie: StepTie | None = None) -> tuple[int, dict[str, Any]]:
        """Answer one request to ``/api/2.0/mlflow/<path>``: ``(status, JSON object)``.

        ``body`` is the raw bytes (or the decoded JSON); a GET's arguments are in ``query``.
        ``tie``: the step a job's token belongs to (new runs are tied to it).
        """
        try:
            route = _ROUTES.get(path.strip("/"))
            if route is None or method.upper() not in route[0]:
                raise WireError(404, "ENDPOINT_NOT_FOUND", f"{method} /api/2.0/mlflow/{path} is not served here "
                                "(mloop answers the part of MLflow's API its Python client uses for tracking)")
            args: dict[str, Any] = dict(query or {})
            if method.upper() != "GET":
                args.update(self._json(body))
            return 200, route[1](self, args, tie)
        except WireError as exc:
            return exc.status, exc.body()
        except NotFoundError as exc:
            return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": exc.message}
        except StoreError as exc:
            return 503, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": exc.message}
        except ValueError as exc:
            return 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": str(exc)}

    @staticmethod
    def _json(body: bytes | Any) -> dict[str, Any]:
        if isinstance(body, (bytes, bytearray, memoryview)):
            if not body:
                return {}
            try:
                body = json.loads(bytes(body))
            except (ValueError, UnicodeDecodeError) as exc:
                raise WireError(400, "MALFORMED_REQUEST", f"the request body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise WireError(400, "MALFORMED_REQUEST", "the request body must be a JSON object")
        return body

    # ----- experiments
    @staticmethod
    def experiment_json(name: str) -> dict[str, Any]:
        return {"experiment_id": "0" if name == DEFAULT_EXPERIMENT else name, "name": name,
                "artifact_location": f"mlflow-artifacts:/experiments/{name}", "lifecycle_stage": "active",
                "tags": []}

    @staticmethod
    def experiment_name(experiment_id: str) -> str:
        return DEFAULT_EXPERIMENT if experiment_id in ("", "0") else experiment_id

    def _get_by_name(self, args: Mapping[str, Any], tie: StepTie | None) -> dict[str, Any]:
        return {"experiment": self.experiment_json(_text(args, "experiment_name"))}

    def _get_experiment(self, args: Mapping[str, Any], tie: StepTie | None) -> dict[str, Any]:
        return {"experiment": self.experiment_json(self.experiment_name(_text(args, "experiment_id")))}

    def _create_experiment(self, args: Mapping[str, Any], tie: StepTie | None) -> dict[str, Any]:
        name = _text(args, "name", limit=500)
        return {"experiment_id": self.experiment_json(name)["experiment_id"]}

    def _search_experiments(self, args: Mapping[str, Any], tie: StepTie | None) -> dict[str, Any]:
        names = {DEFAULT_EXPERIMENT} | {r.experiment for r in self.store.tracking.search_runs(limit=10_000)}
        return {"experiments": [self.experiment_json(n) for n in sorted(names)]}

    # ----- runs
    def run_json(self, record: TrackingRunRecord, *, data: bool = True) -> dict[str, Any]:
        """A run as MLflow's ``Run`` message (``{"info", "data", "inputs"}``), or its info only."""
        values = self.store.tracking.values(record.id) if data else {"tag": {}}
        info: dict[str, Any] = {
            "run_id": record.id, "run_uuid": record.id, "run_name": record.name,
            "experiment_id": self.experiment_json(record.experiment)["experiment_id"],
            "user_id": values["tag"].get("mlflow.user", ""), "status": record.status,
            "start_time": record.start_time, "artifact_uri": record.artifact_uri or artifact_uri_for(record.id),
            "lifecycle_stage": "active",
        }
        if record.end_time is not None:
            info["end_time"] = record.end_time
        if not data:
            return info
        metrics = [{"key": p.key, "value": p.value, "timestamp": p.timestamp, "step": p.step}
                   for p in self.store.tracking.latest_metrics(record.id).values()]
        return {"info": info, "data": {
            "metrics": metrics,
            "params": [{"key": k, "value": v} for k, v in values.get("param", {}).items()],
            "tags": [{"key": k, "value": v} for k, v in values.get("tag", {}).items()]}, "inputs": {}}

    def _run(self, args: Mapping[str, Any]) -> TrackingRunRecord:
        run_id = _text(args, "run_id", required=False) or _text(args, "run_uuid", required=False)
        if not run_id:
            raise _bad("Missing value for required parameter 'run_id'")
        found = self.store.tracking.find_run(run_id)
        if found is None:
            raise _missing(f"Run with id={run_id} not found")
        return found

    def _existing(self, args: Mapping[str, Any]) -> str:
        """The id of the run ``args`` names, known to exist (a read only the first time)."""
        run_id = args.get("run_id") or args.get("run_uuid")
        if isinstance(run_id, str) and run_id in self._known:
            return run_id
        record = self._run(args)
        if len(self._known) > 100_000:
            self._known.clear()
        self._known.add(record.id)
        return record.id

    def create_run(self, experiment: str, *, name: str = "", start_time: int | None = None,
                   tags: dict[str, str] | None = None, tie: StepTie | None = None) -> TrackingRunRecord:
        """A new tracking run (tied to ``tie``'s step when a job's token made it)."""
        tags = dict(tags or {})
        name = name or tags.get("mlflow.runName", "")
        if tie is not None:
            tags.setdefault("mloop.run_id", tie.run_id)
            tags.setdefault("mloop.step", tie.step_name)
            tags["mloop.attempt"] = str(tie.attempt)
        record = self.store.tracking.create_run(
            experiment, name, start_time=start_time, run_id=tie.run_id if tie else None,
            step_name=tie.step_name if tie else None, tags=tags, artifact_uri=artifact_uri_for("{id}"))
        if not name:
            self.store.tracking.set_values(record.id, "tag", {"mlflow.runName": record.name})
        return record

    def _create_run(self, args: Mapping[str, Any], tie: StepTie | None) -> dict[str, Any]:
        experiment = self.experiment_name(_text(args, "experiment_id", required=False))
        if tie is not None and experiment == DEFAULT_EXPERIMENT and tie.workflow:
            experiment = tie.workflow
        start = _integer(args.get("start_time"), "start_time", int(time.time() * 1000))
        record = self.create_run(experiment, name=_text(args, "run_name", required=False, limit=500),
                                 start_time=start, tags=_tags(args.get("tags")), tie=tie)
        if args.get("user_id"):
            self.store.tracking.set_values(record.id, "tag", {"mlflow.user": _text(args, "user_id")})
        return {"run": self.run_json(record)}

    def _update_run(self, args: Mapping[str, Any], tie: StepTie | None) -> dict[str, Any]:
        record = self._run(args)
        status = _text(args, "status", required=False) or None
        if status is not None and status not in ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"):
            raise _bad(f"Invalid value {status!r} for parameter 'status'")
        end = args.get("end_time")
        updated = self.store.tracking.update_run(
            record.id, status=status, name=_text(args, "run_name", required=False, limit=500) or None,
            end_time=None if end in (None, "") else _integer(end, "end_time", 0))
        if args.get("run_name"):
            self.store.tracking.set_values(record.id, "tag", {"mlflow.runName": updated.name})
        return {"run_info": self.run_json(updated, data=False)}

    def _get_run(self, args: Mapping[str, Any], tie: StepTie | None) -> dict[str, Any]:
        return {"run": self.run_json(self._run(args))}

    def _search_runs(self, args: Mapping[str, Any], tie: StepTie | None) -> dict[str, Any]:
        if _text(args, "filter", required=False, limit=100_000).strip():
            raise _bad("search filters are not supported by mloop's tracking endpoint; search without one")
        ids = args.get("experiment_ids")
        if isinstance(ids, str):
            ids = [ids]
        if ids is not None and not (isinstance(ids, list) and all(isinstance(i, (str, int)) for i in ids)):
            raise _bad("'experiment_ids' must be a list of experiment ids")
        limit = _integer(args.get("max_results"), "max_results", 1000)
        offset = _integer(args.get("page_token"), "page_token", 0)
        if not 1 <= limit <= 50_000 or offset < 0:
            raise _bad("'max_results' must be 1..50000 and 'page_token' a token this endpoint gave")
        names = None if not ids else [self.experiment_name(str(i)) for i in ids]
        found = self.store.tracking.search_runs(names, limit=limit + 1, offset=offset)
        out: dict[str, Any] = {"runs": [self.run_json(r) for r in found[:limit]]}
        if len(found) > limit:
            out["next_page_token"] = str(offset + limit)
        return out

    # ----- values
    def _log_metric(self, args: Mapping[str, Any], tie: StepTie | None) -> dict[str, Any]:
        run_id = self._existing(args)
        rows = parse_points([{k: args.get(k) for k in ("key", "value", "step", "timestamp") if k in args}])
        self.store.tracking.log_points(run_id, rows)
        return {}

    def _log_param(self, args: Mapping[str, Any], tie: StepTie | None) -> dict[str, Any]:
        record = self._run(args)
        self._params(record.id, {_text(args, "key", limit=_MAX_KEY_CHARS): _text(args, "value", required=False)})
        return {}

    def _params(self, tracking_run_id: str, params: dict[str, str]) -> None:
        clashes = self.store.tracking.set_values(tracking_run_id, "param", params)
        if clashes:
            key, (old, new) = next(iter(clashes.items()))
            raise _bad(f"Changing param values is not allowed. Param with key='{key}' was already logged "
                       f"with value='{old}' for run ID='{tracking_run_id}'. Attempted logging new value '{new}'.")

    def _set_tag(self, args: Mapping[str, Any], tie: StepTie | None) -> dict[str, Any]:
        record = self._run(args)
        key = _text(args, "key", limit=_MAX_KEY_CHARS)
        self.store.tracking.set_values(record.id, "tag", {key: _text(args, "value", required=False, limit=8000)})
        if key == "mlflow.runName":
            self.store.tracking.update_run(record.id, name=str(args.get("value") or record.name))
        return {}

    def _delete_tag(self, args: Mapping[str, Any], tie: StepTie | None) -> dict[str, Any]:
        record = self._run(args)
        self.store.tracking.delete_tag(record.id, _text(args, "key", limit=_MAX_KEY_CHARS))
        return {}

    def _log_batch(self, args: Mapping[str, Any], tie: StepTie | None) -> dict[str, Any]:
        run_id = self._existing(args)
        rows = parse_points(args.get("metrics") or [])
        params = _tags(args.get("params"), "params")
        tags = _tags(args.get("tags"))
        if params:
            self._params(run_id, params)
        if tags:
            self.store.tracking.set_values(run_id, "tag", tags)
        self.store.tracking.log_points(run_id, rows)
        return {}

    def _log_inputs(self, args: Mapping[str, Any], tie: StepTie | None) -> dict[str, Any]:
        self._run(args)
        return {}  # datasets and models are not tracked here; accepted so scripts go on

    def _history(self, args: Mapping[str, Any], tie: StepTie | None) -> dict[str, Any]:
        record = self._run(args)
        key = _text(args, "metric_key", limit=_MAX_KEY_CHARS)
        limit = _integer(args.get("max_results"), "max_results", 25_000)
        after = _integer(args.get("page_token"), "page_token", 0)
        if not 1 <= limit <= 1_000_000:
            raise _bad("'max_results' must be 1..1000000")
        points = self.store.tracking.points([record.id], key=key, after=after, limit=limit + 1)
        out: dict[str, Any] = {"metrics": [{"key": p.key, "value": p.value, "timestamp": p.timestamp,
                                            "step": p.step} for p in points[:limit]]}
        if len(points) > limit:
            out["next_page_token"] = str(points[limit - 1].id)
        return out

    # ----- live points (MetricLogger)
    def ingest(self, tracking_run_id: str, body: bytes | Any) -> tuple[int, dict[str, Any]]:
        """``POST .../tracking/runs/<id>/points`` with ``{"points": [...]}``: ``(status, JSON)``."""
        try:
            data = self._json(body)
            rows = parse_points(data.get("points"))
            self._existing({"run_id": tracking_run_id})
            return 200, {"stored": self.store.tracking.log_points(tracking_run_id, rows)}
        except WireError as exc:
            return exc.status, exc.body()
        except StoreError as exc:
            return 503, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": exc.message}

    # ----- artifacts (the mlflow-artifacts proxy)
    def artifact_url(self, path: str, *, allow_root: bool = False) -> str:
        """The artifact store URL of ``<tracking run id>/...``, checked.

        Raises:
            WireError: 400 for a path that is absolute, climbs (``..``), holds NUL or empty
                parts; 404 when it names no tracking run; 501 without an artifact store.
        """
        if self.artifacts is None:
            raise WireError(501, "NOT_IMPLEMENTED", "this endpoint has no artifact store")
        path = unquote(path)
        if not path or "\x00" in path or "\\" in path or path.startswith("/") or ":" in path.split("/", 1)[0]:
            raise _bad(f"invalid artifact path {path!r}: a relative path is expected")
        parts = path.rstrip("/").split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise _bad(f"invalid artifact path {path!r}: no empty, '.' or '..' parts")
        if (len(parts) < 2 and not allow_root) or (len(parts) >= 2 and parts[1] != "artifacts"):
            raise _bad(f"invalid artifact path {path!r}: expected <run id>/artifacts/<file>")
        if self.store.tracking.find_run(parts[0]) is None:
            raise _missing(f"Run with id={parts[0]} not found")
        return self.artifacts.url("tracking", *parts)

    def put_artifact(self, path: str, data: bytes) -> tuple[int, dict[str, Any]]:
        try:
            url = self.artifact_url(path)
            if len(path.rstrip("/").split("/")) < 3:
                raise _bad(f"invalid artifact path {path!r}: name a file under <run id>/artifacts/")
            assert self.artifacts is not None
            self.artifacts.write_bytes(url, data)
            return 200, {}
        except WireError as exc:
            return exc.status, exc.body()
        except ArtifactError as exc:
            return 500, {"error_code": "INTERNAL_ERROR", "message": exc.message}

    def get_artifact(self, path: str) -> tuple[int, bytes | dict[str, Any]]:
        try:
            url = self.artifact_url(path)
            assert self.artifacts is not None
            if not self.artifacts.exists(url):
                raise _missing(f"no artifact {path!r}")
            return 200, self.artifacts.read_bytes(url)
        except WireError as exc:
            return exc.status, exc.body()
        except ArtifactError as exc:
            return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": exc.message}

    def list_artifacts(self, path: str) -> tuple[int, dict[str, Any]]:
        try:
            url = self.artifact_url(path, allow_root=True)
            assert self.artifacts is not None
            if not self.artifacts.exists(url):
                return 200, {"files": []}
            files = []
            for child in self.artifacts.list(url):
                name = child.rstrip("/").rsplit("/", 1)[-1]
                is_dir = child.endswith("/")
                entry: dict[str, Any] = {"path": name, "is_dir": is_dir}
                if not is_dir:
                    entry["file_size"] = self.artifacts.fs.size(self.artifacts.fs._strip_protocol(child))
                files.append(entry)
            return 200, {"files": files}
        except WireError as exc:
            return exc.status, exc.body()
        except ArtifactError as exc:
            return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": exc.message}


_GET, _POST = frozenset({"GET"}), frozenset({"POST"})
_ROUTES: dict[str, tuple[frozenset[str], Handler]] = {
    "experiments/get-by-name": (_GET, TrackingApi._get_by_name),
    "experiments/get": (_GET, TrackingApi._get_experiment),
    "experiments/create": (_POST, TrackingApi._create_experiment),
    "experiments/search": (_GET | _POST, TrackingApi._search_experiments),
    "runs/create": (_POST, TrackingApi._create_run),
    "runs/update": (_POST, TrackingApi._update_run),
    "runs/get": (_GET, TrackingApi._get_run),
    "runs/search": (_POST, TrackingApi._search_runs),
    "runs/log-metric": (_POST, TrackingApi._log_metric),
    "runs/log-parameter": (_POST, TrackingApi._log_param),
    "runs/set-tag": (_POST, TrackingApi._set_tag),
    "runs/delete-tag": (_POST, TrackingApi._delete_tag),
    "runs/log-batch": (_POST, TrackingApi._log_batch),
    "runs/log-inputs": (_POST, TrackingApi._log_inputs),
    "metrics/get-history": (_GET, TrackingApi._history),
}
