"""One exception tree for mloop.

Every error mloop raises on purpose derives from :class:`MloopError`. A class may also
subclass the builtin it refines, so ``except ValueError`` keeps working for callers who
don't know about mloop. Messages say what is wrong *and* what to do next.

::

    MloopError
    ├── ConfigError                      bad settings, unknown flavor
    │   └── UnknownFlavorError (LookupError)
    ├── SpecError
    │   ├── SpecValidationError (ValueError)   every problem found in a workflow/spec
    │   └── SpecVersionError                   spec written by a newer mloop
    ├── PlaceholderValueError (ValueError)     run-time values refused before anything runs
    ├── NotFoundError (LookupError)            run, release, step, algorithm, model ...
    │   └── UnknownOutputError (KeyError)      step.outputs["name"] for a name it doesn't have
    ├── RunStateError                          e.g. retry of a run that did not fail
    ├── BadArgumentError (ValueError)          a filter or option value that names nothing
    ├── NotSupportedYetError (NotImplementedError)  step kind whose handler is not built yet
    ├── MetricsError (ValueError)              malformed or oversized metrics file
    │   └── MetricKeyNotFoundError (KeyError)  (in mloop.metrics) no float metric of that key
    ├── DatasetFormatError (ValueError)        a dataset source that doesn't fit its import format
    ├── DatasetError (ValueError)              a bad dataset name, source folder, version or split ratio
    │   └── DatasetConflictError               another import committed a version first: retry
    ├── LabelingError (ValueError)             a labeling task refuses labels, a file or a completion
    │   └── LabelTaskCompletedError            the task is completed: it takes no more labels
    ├── ModelError (ValueError)                a model folder, type or reference the registry refuses
    │   └── ModelVersionExistsError            that model version is already registered
    ├── ServingError                           the inference server
    │   ├── ModelLoadError                     a model folder the server cannot load (worker exit 3)
    │   ├── BadInputError (ValueError)         a request the model cannot take (HTTP 4xx)
    │   ├── ServiceCodeError                   customize_service.py or the model raised (HTTP 500)
    │   └── ManagedServiceError                a managed service (mloop service, ServiceStep)
    │       └── DeployFailedError              a deploy that did not go live (the old version serves on)
    ├── TriggerError (ValueError)              a git-push trigger refuses a definition or a push
    │   ├── TriggerAuthError                   a push with no or a wrong signature (HTTP 401)
    │   ├── PayloadTooLargeError               a push payload over the size limit (HTTP 413)
    │   ├── GitFetchError                      the commit could not be fetched (HTTP 502)
    │   └── TriggerWorkflowError               the commit's workflow file can't be loaded or run (HTTP 422)
    ├── ScheduleError (ValueError)             a bad schedule name, cron expression, time zone, catch-up
    ├── UserError (ValueError)                 a bad console user name, scope or password
    │   └── UserExistsError                    that user name is taken (HTTP 409)
    ├── TooManyRequestsError                   too many failed logins from one client (HTTP 429)
    ├── StoreError                             database problems, translated at the edge
    │   └── SchemaVersionError                 database needs ``mloop db upgrade``
    ├── ArtifactError                          storage/fsspec problems, translated at the edge
    ├── MissingExtraError (ImportError)        an optional dependency is not installed
    └── StepFailed                             the *user's* job failed (exit code + log tail);
                                               not a failure of mloop itself
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a workflow, a spec or a set of values.

    Attributes:
        location: where it is, e.g. ``steps[train].inputs[data_url]`` or ``parameters[epochs]``.
        message: what is wrong.
        hint: what to do about it (optional).
        step: the step at fault, if any.
        input: the input or output at fault, if any.
        placeholder: the placeholder at fault, if any.
    """

    location: str
    message: str
    hint: str | None = None
    step: str | None = None
    input: str | None = None
    placeholder: str | None = None

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class MloopError(Exception):
    """Base of every error mloop raises on purpose.

    Attributes:
        hint: what the user can do about it; printed by the CLI below the message.
        code: a stable machine-readable code, used by the CLI exit codes and the REST layer.
    """

    code: str = "mloop_error"
    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.fields = fields
        for key, value in fields.items():
            setattr(self, key, value)

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (the shape the REST layer will send)."""
        out: dict[str, Any] = {"code": self.code, "type": type(self).__name__, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        out.update({k: v for k, v in self.fields.items() if _jsonable(v)})
        return out


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool, list, dict))


class _ProblemsMixin:
    """Errors that carry a list of :class:`Problem` and print each on its own line."""

    problems: list[Problem]

    @staticmethod
    def _format(headline: str, problems: Sequence[Problem]) -> str:
        lines = [headline]
        lines.extend(f"  - {p}" for p in problems)
        return "\n".join(lines)


class ConfigError(MloopError):
    code = "config_error"


class UnknownFlavorError(ConfigError, LookupError):
    code = "unknown_flavor"


class SpecError(MloopError):
    code = "spec_error"


class SpecValidationError(SpecError, ValueError, _ProblemsMixin):
    """A workflow or spec breaks one or more rules; ``problems`` lists all of them."""

    code = "spec_invalid"
    exit_code = 2

    def __init__(self, problems: Iterable[Problem], *, headline: str | None = None) -> None:
        self.problems = list(problems)
        n = len(self.problems)
        head = headline or f"workflow is invalid ({n} problem{'s' if n != 1 else ''}):"
        first = self.problems[0] if self.problems else None
        super().__init__(
            self._format(head, self.problems),
            step=first.step if first else None,
            input=first.input if first else None,
            placeholder=first.placeholder if first else None,
        )

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["problems"] = [p.__dict__ for p in self.problems]
        return out


class SpecVersionError(SpecError):
    code = "spec_version"


class PlaceholderValueError(MloopError, ValueError, _ProblemsMixin):
    """Run-time values that do not fit their placeholders; nothing has run."""

    code = "bad_placeholder_value"
    exit_code = 2

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        n = len(self.problems)
        head = f"{n} placeholder value{'s are' if n != 1 else ' is'} not acceptable (nothing was run):"
        first = self.problems[0] if self.problems else None
        super().__init__(self._format(head, self.problems), placeholder=first.placeholder if first else None)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["problems"] = [p.__dict__ for p in self.problems]
        return out


class NotFoundError(MloopError, LookupError):
    code = "not_found"
    exit_code = 3


class UnknownOutputError(NotFoundError, KeyError):
    """``step.outputs[name]`` for a name the step doesn't have (also a KeyError, as for a dict)."""


class RunStateError(MloopError):
    code = "bad_run_state"


class BadArgumentError(MloopError, ValueError):
    """A value given to a command or query that can't mean anything (an unknown status)."""

    code = "bad_argument"
    exit_code = 2


class NotSupportedYetError(MloopError, NotImplementedError):
    code = "not_supported_yet"


class MetricsError(MloopError, ValueError):
    code = "bad_metrics"


class DatasetFormatError(MloopError, ValueError):
    """A dataset source doesn't fit its import format; ``problems`` lists each bad file."""

    code = "dataset_format"
    exit_code = 2


class DatasetError(MloopError, ValueError):
    """A dataset operation refused: bad name, missing or empty source, unknown version, bad ratio."""

    code = "dataset_error"
    exit_code = 2


class DatasetConflictError(DatasetError):
    """Another process committed a version of the dataset while this one was being built.

    Nothing was lost: the stored files are reused when the operation is run again."""

    code = "dataset_conflict"


class LabelingError(MloopError, ValueError):
    """A labeling task refuses something: unknown sample ids, labels outside its label set, a
    malformed labels file, completing a task with samples left to label. Nothing is recorded."""

    code = "labeling_error"
    exit_code = 2


class LabelTaskCompletedError(LabelingError):
    """Labels for a task that is completed (its labeled version is made; HTTP 409)."""

    code = "label_task_completed"


class ModelError(MloopError, ValueError):
    """The model registry refuses a folder (missing file, unknown type), a name or a version."""

    code = "bad_model"
    exit_code = 2


class ModelVersionExistsError(ModelError):
    """An explicit model version that is already taken (versions are immutable)."""

    code = "model_version_exists"


class ServingError(MloopError):
    """The inference server (:mod:`mloop.serving`) could not do what was asked."""

    code = "serving_error"


class ModelLoadError(ServingError):
    """A model folder that cannot be served: missing file, unknown type, a loader or
    ``customize_service.py`` that raises. Nothing is served; the worker exits with code 3."""

    code = "model_load_failed"
    exit_code = 3


class BadInputError(ServingError, ValueError):
    """A request the model cannot take; ``status`` is the HTTP status it is answered with."""

    code = "bad_input"
    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None, status: int = 422, **fields: Any) -> None:
        super().__init__(message, hint=hint, status=status, **fields)


class ServiceCodeError(ServingError):
    """The user's ``customize_service.py`` (or the model itself) raised while serving a request;
    answered with 500, the traceback goes to the server log, and the server keeps serving."""

    code = "service_error"


class ManagedServiceError(ServingError):
    """A managed service (``mloop service``, ServiceStep) could not do what was asked: bad
    name, no such service, a supervisor that does not answer, a port that is taken."""

    code = "managed_service_error"


class DeployFailedError(ManagedServiceError):
    """A deploy that did not go live: the new worker failed to load the model (the loader's
    error is the message) or was not ready in time. The previous version keeps serving."""

    code = "deploy_failed"


class AuthError(MloopError):
    """A request to the server with no token, or one that is unknown or revoked."""

    code = "unauthorized"
    exit_code = 4


class ForbiddenError(AuthError):
    """A token whose scope does not allow the action (the message names the scope needed)."""

    code = "forbidden"


class UserError(MloopError, ValueError):
    """A console user refused: a bad name, scope or password (HTTP 422)."""

    code = "user_error"
    exit_code = 2


class UserExistsError(UserError):
    """A console user of that name exists already (HTTP 409)."""

    code = "user_exists"


class TooManyRequestsError(MloopError):
    """Too many failed attempts (e.g. logins) from one client in a short while (HTTP 429);
    ``retry_after`` is how many seconds to wait before trying again."""

    code = "too_many_requests"
    exit_code = 4
    retry_after: int

    def __init__(self, message: str, *, retry_after: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint, retry_after=retry_after)


class TriggerError(MloopError, ValueError):
    """A git-push trigger refuses something: a bad name, repository URL or workflow path, a
    malformed push payload (HTTP 400)."""

    code = "trigger_error"
    exit_code = 2


class TriggerAuthError(TriggerError):
    """A push event with no signature, or one that does not match the trigger's secret (HTTP 401).
    Nothing was recorded or run."""

    code = "trigger_unauthorized"


class PayloadTooLargeError(TriggerError):
    """A push payload over the size limit (HTTP 413)."""

    code = "payload_too_large"


class GitFetchError(TriggerError):
    """git could not fetch or check out the pushed commit (HTTP 502); git's words are the message."""

    code = "git_fetch_failed"


class ScheduleError(MloopError, ValueError):
    """A schedule refused: a bad name, cron expression, time zone or catch-up policy, a name taken."""

    code = "schedule_error"
    exit_code = 2


class ScheduleExistsError(ScheduleError):
    """A schedule of that name exists already (HTTP 409)."""

    code = "schedule_exists"


class TriggerWorkflowError(TriggerError):
    """The pushed commit's workflow file is missing, cannot be loaded, or refuses the trigger's
    parameters (HTTP 422); nothing was queued."""

    code = "trigger_workflow_invalid"


class StoreError(MloopError):
    code = "store_error"


class SchemaVersionError(StoreError):
    code = "schema_version"


class ArtifactError(MloopError):
    code = "artifact_error"


class MissingExtraError(MloopError, ImportError):
    code = "missing_extra"

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"this feature needs the '{package}' package, which is not installed",
            hint=f"pip install 'mloop[{extra}]'",
            package=package,
            extra=extra,
        )


class StepFailed(MloopError):
    """The user's job failed. Not an mloop bug: the message carries the job's own words."""

    code = "step_failed"

    def __init__(self, step: str, reason: str, *, exit_code_of_job: int | None = None,
                 log_tail: Sequence[str] = ()) -> None:
        msg = f"step '{step}' failed: {reason}"
        if log_tail:
            msg += "\n" + "\n".join(f"    {line}" for line in log_tail)
        super().__init__(msg, step=step, reason=reason, exit_code_of_job=exit_code_of_job,
                         log_tail=list(log_tail))
