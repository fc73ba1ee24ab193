"""The Ray executor: jobs as Ray tasks with CPU/GPU/memory requests (needs ``mloop[ray]``).

It will start the same job runner (:mod:`mloop.runner`) inside a Ray task, with the same
:class:`~mloop.executors.base.JobRequest`; its refs will be ``ray:<task id>``.
"""

from __future__ import annotations

from mloop.errors import MissingExtraError, NotSupportedYetError
from mloop.executors.base import ExitCallback, Executor, JobExit, JobHandle, JobRequest, register_executor


class RayExecutor(Executor):
    """Placeholder for the scale-out issue: fails clearly instead of running jobs elsewhere."""

    name = "ray"

    def __init__(self) -> None:
        try:
            import ray  # noqa: F401
        except ImportError as exc:
            raise MissingExtraError("ray", "ray") from exc
        raise NotSupportedYetError("the Ray executor is not available yet", hint="use MLOOP_EXECUTOR=local")

    def launch(self, request: JobRequest, on_exit: ExitCallback | None = None) -> JobHandle:  # pragma: no cover
        raise NotSupportedYetError("the Ray executor is not available yet")

    def poll(self, ref: str) -> JobExit | None:  # pragma: no cover
        raise NotSupportedYetError("the Ray executor is not available yet")

    def cancel(self, ref: str, grace_seconds: float = 5.0) -> bool:  # pragma: no cover
        raise NotSupportedYetError("the Ray executor is not available yet")


register_executor("ray", RayExecutor)
