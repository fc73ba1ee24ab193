"""One handler per step kind, looked up by the spec's step type."""

from __future__ import annotations

from mloop.executors.base import Executor
from mloop.steps.base import Launched, Outcome, StepHandler, Waiting


def handler_for(step_type: str, executor: Executor) -> StepHandler:
    """The handler for a step type (kinds not built yet fail clearly when reached)."""
    if step_type == "job":
        from mloop.steps.job import JobHandler

        return JobHandler(executor)
    if step_type == "condition":
        from mloop.steps.condition import ConditionHandler

        return ConditionHandler(executor)
    if step_type == "model":
        from mloop.steps.model import ModelHandler

        return ModelHandler(executor)
    if step_type == "service":
        from mloop.steps.service import ServiceHandler

        return ServiceHandler(executor)
    if step_type == "labeling":
        from mloop.steps.labeling import LabelingHandler

        return LabelingHandler(executor)
    if step_type in ("create_dataset", "dataset_import", "release_dataset"):
        from mloop.steps import dataset

        kinds = {"create_dataset": dataset.CreateDatasetHandler, "dataset_import": dataset.DatasetImportHandler,
                 "release_dataset": dataset.ReleaseDatasetHandler}
        return kinds[step_type](executor)
    from mloop.steps.unsupported import UnsupportedHandler

    return UnsupportedHandler(executor)


__all__ = ["Launched", "Outcome", "StepHandler", "Waiting", "handler_for"]
