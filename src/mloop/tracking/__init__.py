"""MLflow-compatible tracking, and metrics that jobs report while they run.

A training script that logs with ``mlflow`` (``start_run``, ``log_param``, ``log_metric``,
``set_tag``, ``log_batch``, ``log_artifact``, ``end_run``) inside a JobStep has its values
captured into that step: the job gets ``MLFLOW_TRACKING_URI`` pointing at a loopback endpoint
of the engine's process that answers the subset of MLflow's REST API the Python client calls
(``/api/2.0/mlflow/...`` and the ``mlflow-artifacts`` proxy), with ``MLFLOW_RUN_ID`` made for
its step, plus ``MLOOP_METRICS_URL``, where :class:`mloop.metrics.MetricLogger` posts batches
of points while the job trains. When the step ends, each key's latest value becomes a float
metric of the step (source ``mlflow``); params and tags stay in the tracking tables.

* :mod:`mloop.tracking.api`: the REST subset, framework-neutral (a method, a path, a body in;
  a status and JSON out), served by the team server (:mod:`mloop.server.api.mlflow`) and by
* :mod:`mloop.tracking.loopback`: a small HTTP server on 127.0.0.1 (standard library, a thread)
  that the engine's process runs while jobs of it run, with one random token per step;
* :mod:`mloop.tracking.jobs`: the JobStep tie-in (the job's environment, the step's metrics).

Layer: domain operations (below the run service and the step handlers; imports only the store,
the artifact store and errors).
"""

from mloop.tracking.api import TrackingApi, WireError

__all__ = ["TrackingApi", "WireError"]
