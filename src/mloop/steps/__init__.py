"""The built-in step handlers, one per step kind, registered with the engine on import.

Layer: handlers (below the engine's interface in :mod:`mloop.engine.handlers`, above the
domain operations in :mod:`mloop.services`). The engine knows no kind by name: this package
registers each kind's handler (by import path, so a run imports only the handlers its steps
use), and the run service imports it before it starts an engine. A new step kind is a new
handler class plus one ``register_handler`` call.
"""

from __future__ import annotations

from mloop.engine.handlers import (
    HandlerFactory, Launched, Outcome, StepHandler, Waiting, registry, run_in_thread,
)

#: kind -> the built-in handler that runs it.
BUILTIN: dict[str, str] = {
    "job": "mloop.steps.job:JobHandler",
    "condition": "mloop.steps.condition:ConditionHandler",
    "model": "mloop.steps.model:ModelHandler",
    "service": "mloop.steps.service:ServiceHandler",
    "labeling": "mloop.steps.labeling:LabelingHandler",
    "create_dataset": "mloop.steps.dataset:CreateDatasetHandler",
    "dataset_import": "mloop.steps.dataset:DatasetImportHandler",
    "release_dataset": "mloop.steps.dataset:ReleaseDatasetHandler",
    "mrs_job": "mloop.steps.mrs:MrsJobHandler",
}


def register_handler(kind: str, factory: HandlerFactory | str) -> None:
    """Make steps of ``kind`` run with the handler ``factory(executor)`` builds (replaces any)."""
    registry.register(kind, factory)


for _kind, _path in BUILTIN.items():
    register_handler(_kind, _path)

__all__ = ["BUILTIN", "HandlerFactory", "Launched", "Outcome", "StepHandler", "Waiting", "register_handler",
           "run_in_thread"]
