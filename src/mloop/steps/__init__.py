"""Step handlers, registered by kind: the engine asks this table and knows no kind by name.

Layer: handlers (below the engine, above the domain operations in :mod:`mloop.services`).
A new step kind is a new handler class plus one :func:`register_handler` call; the engine
does not change. Built-in kinds are registered by import path, so a run imports only the
handlers its steps use.
"""

from __future__ import annotations

import importlib
from typing import Callable, Union

from mloop.executors.base import Executor
from mloop.steps.base import Launched, Outcome, StepHandler, Waiting

HandlerFactory = Callable[[Executor], StepHandler]

#: kind -> handler factory, or "module:Class" for a built-in loaded on first use.
_HANDLERS: dict[str, Union[HandlerFactory, str]] = {
    "job": "mloop.steps.job:JobHandler",
    "condition": "mloop.steps.condition:ConditionHandler",
    "model": "mloop.steps.model:ModelHandler",
    "service": "mloop.steps.service:ServiceHandler",
    "labeling": "mloop.steps.labeling:LabelingHandler",
    "create_dataset": "mloop.steps.dataset:CreateDatasetHandler",
    "dataset_import": "mloop.steps.dataset:DatasetImportHandler",
    "release_dataset": "mloop.steps.dataset:ReleaseDatasetHandler",
}
#: What a kind nobody registered gets: a handler that fails the step with a clear message.
_FALLBACK = "mloop.steps.unsupported:UnsupportedHandler"


def register_handler(kind: str, factory: HandlerFactory) -> None:
    """Make steps of ``kind`` run with the handler ``factory(executor)`` builds (replaces any)."""
    _HANDLERS[kind] = factory


def registered_kinds() -> list[str]:
    return sorted(_HANDLERS)


def _load(path: str) -> HandlerFactory:
    module, _, name = path.partition(":")
    factory: HandlerFactory = getattr(importlib.import_module(module), name)
    return factory


def handler_for(step_type: str, executor: Executor) -> StepHandler:
    """A new handler for steps of ``step_type`` (kinds not built yet fail clearly when reached)."""
    entry = _HANDLERS.get(step_type, _FALLBACK)
    if isinstance(entry, str):
        entry = _load(entry)
        if step_type in _HANDLERS:
            _HANDLERS[step_type] = entry
    return entry(executor)


__all__ = ["HandlerFactory", "Launched", "Outcome", "StepHandler", "Waiting", "handler_for", "register_handler",
           "registered_kinds"]
