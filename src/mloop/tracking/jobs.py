"""The JobStep tie-in: a tracking run and a token for each job, its metrics for the step.

:func:`open_job_tracking` (when a job starts) makes the step's tracking run, registers a token
with this process's loopback endpoint and returns the variables the job gets;
:func:`close_job_tracking` (when it ends) turns every tracking run of that attempt into float
metrics of the step (each key's latest value, source ``mlflow``), ends runs the script left
``RUNNING`` and forgets the token. Neither raises: a job runs whether tracking works or not.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mloop.tracking.api import StepTie

if TYPE_CHECKING:
    from mloop.artifacts import ArtifactStore
    from mloop.store.base import Store

__all__ = ["JobTracking", "close_job_tracking", "open_job_tracking", "step_metric_values", "METRIC_SOURCE"]

log = logging.getLogger(__name__)

#: The ``source`` of the step metrics that came from tracking.
METRIC_SOURCE = "mlflow"

_warned = False


@dataclass
class JobTracking:
    """What a job's tracking needs to be closed again (kept in the launched step's state)."""

    tracking_run_id: str
    token: str
    env: dict[str, str]

    def to_state(self) -> dict[str, Any]:
        return {"tracking_run_id": self.tracking_run_id, "token": self.token}


def open_job_tracking(store: Store, artifacts: ArtifactStore | None, *, run_id: str, step_name: str,
                      attempt: int, workflow: str) -> JobTracking | None:
    """A tracking run for the job of ``step_name`` (attempt ``attempt``) and its environment:
    ``MLFLOW_TRACKING_URI``, ``MLFLOW_TRACKING_TOKEN``, ``MLFLOW_RUN_ID``, ``MLFLOW_EXPERIMENT_NAME``,
    ``MLOOP_METRICS_URL``, ``MLOOP_METRICS_TOKEN``, ``MLOOP_TRACKING_RUN_ID``. None (logged once)
    when it cannot be set up; the job then runs without them."""
    global _warned
    from mloop.tracking import loopback

    tie = StepTie(run_id, step_name, attempt, workflow)
    token = None
    try:
        endpoint, token = loopback.acquire(store, artifacts, tie)
        record = endpoint.api.create_run(workflow or "Default", name=f"{step_name}-{attempt}",
                                         start_time=int(time.time() * 1000), tie=tie,
                                         tags={"mlflow.runName": f"{step_name}-{attempt}", "mlflow.user": "mloop"})
    except Exception as exc:  # noqa: BLE001 - tracking is a convenience; the job runs without it
        if token is not None:
            loopback.release(token)
        if not _warned:
            _warned = True
            log.warning("mloop: jobs run without an MLflow tracking endpoint: %s", exc)
        return None
    env = {
        "MLFLOW_TRACKING_URI": endpoint.url, "MLFLOW_TRACKING_TOKEN": token, "MLFLOW_RUN_ID": record.id,
        "MLFLOW_EXPERIMENT_NAME": workflow or "Default",
        # A dead endpoint must not hold a job up for minutes of retries.
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
        "MLOOP_METRICS_URL": f"{endpoint.url}/api/v1/tracking/runs/{record.id}/points",
        "MLOOP_METRICS_TOKEN": token, "MLOOP_TRACKING_RUN_ID": record.id,
    }
    return JobTracking(record.id, token, env)


def step_metric_values(store: Store, run_id: str, step_name: str, attempt: int | None = None) -> dict[str, float]:
    """Each key's latest value over the tracking runs of a step (of one attempt when given;
    a later run's value wins)."""
    values: dict[str, float] = {}
    for record in store.tracking.runs_of_step(run_id, step_name):
        if attempt is not None:
            tag = store.tracking.values(record.id)["tag"].get("mloop.attempt")
            if tag is not None and tag != str(attempt):
                continue
        for key, point in store.tracking.latest_metrics(record.id).items():
            values[key] = point.value
    return values


def close_job_tracking(store: Store, state: dict[str, Any] | None, *, run_id: str, step_name: str, attempt: int,
                       succeeded: bool) -> dict[str, float]:
    """End the job's tracking: forget its token, end runs still ``RUNNING`` (``FINISHED`` or
    ``FAILED``), and return the step's metric values (empty when anything fails)."""
    from mloop.tracking import loopback

    if not state:
        return {}
    try:
        if state.get("token"):
            loopback.release(state["token"])
        now = int(time.time() * 1000)
        for record in store.tracking.runs_of_step(run_id, step_name):
            if record.status == "RUNNING":
                store.tracking.update_run(record.id, status="FINISHED" if succeeded else "FAILED", end_time=now,
                                          only_if_running=True)
        return step_metric_values(store, run_id, step_name, attempt)
    except Exception as exc:  # noqa: BLE001 - the step's outcome does not hang on tracking
        log.warning("mloop: could not read the tracking metrics of step %s: %s", step_name, exc)
        return {}
