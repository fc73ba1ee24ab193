"""``wf.Workflow`` and ``wf.Subgraph``: a whole pipeline, compiled to a spec and run.

A Workflow is built from plain objects and validated on construction: every problem in
it is reported at once, naming the step, input or placeholder. Only the verbs
(``release``, ``run``, ``release_and_run``) do I/O, through :mod:`mloop.services`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from mloop.errors import NotSupportedYetError, Problem
from mloop.spec import models as m
from mloop.spec.io import dump_spec
from mloop.spec.validate import check_name, validate_spec
from mloop.workflow._base import SpecContext, as_list, name_of
from mloop.workflow._step import Step
from mloop.workflow.data import Storage, _storage_spec
from mloop.workflow.policy import Policy
from mloop.workflow.resource import Workspace

_PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)

#: Set by the CLI while it imports a workflow file: a script that ends in an unguarded
#: ``workflow.release_and_run()`` (as ModelArts CI scripts do) must not run twice.
LOADING_ONLY = False


def _skip_verb(verb: str) -> bool:
    if LOADING_ONLY:
        print(f"mloop: ignoring workflow.{verb}() while loading the file (the mloop command runs it)",
              file=sys.stderr)
    return LOADING_ONLY


def _caller_dir() -> str:
    """The folder of the file that built the workflow: relative paths in it are relative to it."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_globals.get("__file__")
        if filename and not Path(filename).resolve().is_relative_to(_PACKAGE_DIR):
            return str(Path(filename).resolve().parent)
        frame = frame.f_back  # type: ignore[assignment]
    return os.getcwd()


class Subgraph:
    """A named group of steps, for display and DAG checks."""

    def __init__(self, name: str, steps: Any) -> None:
        self.name, self.steps = name, steps


class Workflow:
    """A pipeline of steps.

    Args:
        name: identity of the workflow; ``release()`` adds a version under this name.
        desc: description (at most 500 characters).
        steps: every step; order of execution comes from dependencies.
        session: ``mloop.session.Session`` (or ModelArts' own): no credentials are used locally;
            one with ``server_url``/``token`` sends the verbs to that mloop server.
        storages: root storages the steps write to (those used by steps are found anyway).
        policy: ``wf.policy.Policy`` with partial-run scenes.
        subgraphs: ``wf.Subgraph`` groups.
        extend: free-form extra data stored with each release.
        workspace: ``wf.resource.Workspace``.

    Raises:
        SpecValidationError: listing every problem found.
    """

    def __init__(self, name: str, desc: str, steps: Any, session: Any = None, storages: Any = None,
                 policy: Policy | None = None, subgraphs: Any = None, extend: dict[str, Any] | None = None,
                 workspace: Workspace | None = None) -> None:
        self.name, self.desc = name, desc
        self.steps = as_list(steps)
        self.session = session
        self.storages = as_list(storages)
        self.policy = policy
        self.subgraphs = as_list(subgraphs)
        self.extend = extend
        self.workspace = workspace or Workspace.instance()
        self.source_dir = _caller_dir()
        self._values: dict[str, Any] = {}
        self._spec = self._compile()

    # -- compiling --------------------------------------------------------------------------
    def _build(self) -> tuple[m.WorkflowSpec, list[Problem]]:
        ctx = SpecContext()
        steps: list[m.StepSpec] = []
        for i, step in enumerate(self.steps):
            if isinstance(step, Step):
                ctx.step_objects.setdefault(step.name, step)
            else:
                ctx.problem(f"workflow.steps[{i}]", f"expected a step object, got {step!r}")
        for step in self.steps:
            if isinstance(step, Step):
                steps.append(step._to_spec(ctx))
        storages: dict[str, m.StorageSpec] = {}
        for i, storage in enumerate(self.storages):
            if not isinstance(storage, Storage):
                ctx.problem(f"workflow.storages[{i}]", f"expected a wf.data.Storage, got {storage!r}")
                continue
            spec = _storage_spec(storage.root)
            if spec.name in storages and storages[spec.name] != spec:
                ctx.problem(f"storages[{spec.name}]", f"two different storages are named {spec.name!r}",
                            "give each root storage its own name")
            storages.setdefault(spec.name, spec)
        for name, root in ctx.storage_roots.items():
            spec = _storage_spec(root)
            if name in storages and storages[name] != spec:
                ctx.problem(f"storages[{name}]", f"a step uses a storage named {name!r} that differs from the "
                                                 "one passed to Workflow(storages=...)")
            storages.setdefault(name, spec)
        policy = None
        if self.policy is not None:
            if isinstance(self.policy, Policy):
                policy = self.policy._to_spec(ctx, "policy")
            else:
                ctx.problem("workflow.policy", f"expected wf.policy.Policy, got {self.policy!r}")
        graphs = []
        for i, graph in enumerate(self.subgraphs):
            if not isinstance(graph, Subgraph) or graph.steps is None:
                ctx.problem(f"workflow.subgraphs[{i}]", "expected wf.Subgraph(name, steps)")
                continue
            graphs.append(m.SubgraphSpec(name=name_of(graph.name),
                                         steps=[name_of(getattr(s, "name", s)) for s in as_list(graph.steps)]))
        if not isinstance(self.desc, str):
            ctx.problem("workflow.desc", f"desc must be a string, got {self.desc!r}")
        spec = m.WorkflowSpec(
            name=name_of(self.name),
            description=self.desc if isinstance(self.desc, str) else "",
            steps=steps, parameters=list(ctx.parameters.values()),
            data_requirements=list(ctx.data_requirements.values()), data=list(ctx.data.values()),
            storages=list(storages.values()), policy=policy, sub_graphs=graphs, extend=dict(self.extend or {}),
            workspace_id=getattr(self.workspace, "workspace_id", "0"), source_dir=self.source_dir,
        )
        if check_name(self.name) and not isinstance(self.name, str):
            ctx.problem("workflow.name", f"name must be a string, got {self.name!r}")
        return spec, ctx.problems

    def _compile(self) -> m.WorkflowSpec:
        spec, problems = self._build()
        return validate_spec(spec, problems)

    def validate(self) -> None:
        """Check the workflow again (after changing its objects); raises SpecValidationError."""
        self._spec = self._compile()

    def compile(self) -> m.WorkflowSpec:
        """The validated spec as a pydantic model (what the engine and the store take)."""
        self.validate()
        return self._spec

    def to_spec(self) -> dict[str, Any]:
        """The validated spec as a JSON-serialisable dict: ``schema_version``, ``steps``, ...

        ``mloop.spec.load_spec(workflow.to_spec())`` gives the model back, losslessly.
        """
        return dump_spec(self.compile())

    def to_definition_json(self) -> dict[str, Any]:
        """ModelArts' name for :meth:`to_spec`."""
        return self.to_spec()

    def check_dag(self) -> tuple[bool, None, str]:
        try:
            self.validate()
        except Exception as exc:  # noqa: BLE001 - the 1.0.0 API reports instead of raising
            return False, None, str(exc)
        return True, None, ""

    # -- values for the next run ------------------------------------------------------------
    def set_placeholder(self, name: str, value: Any) -> None:
        """Give a placeholder a value for the next ``run()``."""
        self._values[name] = value

    def set_data(self, name: str, data: Any) -> None:
        """Give a data placeholder a data object (``OBSPath``, ``Dataset``...) for the next ``run()``."""
        from mloop.workflow._base import DataObject

        ctx = SpecContext()
        if isinstance(data, DataObject) and hasattr(data, "_value"):
            self._values[name] = data._value(ctx, f"set_data({name})")  # type: ignore[attr-defined]
        else:
            self._values[name] = data

    # -- verbs (the only I/O) ---------------------------------------------------------------
    def release(self) -> str:
        """Store this workflow as the next release of its name; returns the release id."""
        from mloop import runs

        if _skip_verb("release"):
            return ""
        from mloop.client import client_for

        client = client_for(_verb_settings(self.session))
        if client is not None:  # client mode: the code goes up, the release is the server's
            with client:
                return str(client.release(self.compile())["id"])
        return runs.release_spec_with_settings(runs.default_settings(), self.compile()).id

    def run(self, steps: Any = None, experiment_id: str | None = None, take_snapshot: bool = True,
            snapshot_path: str | None = None, *, parameters: dict[str, Any] | None = None,
            storages: dict[str, str] | None = None, quiet: bool = False) -> str:
        """Run all steps, or only ``steps``, in this process; blocks until done.

        Returns the run id. Raises StepFailed when the run fails (so a CI job fails too).
        """
        if _skip_verb("run"):
            return ""
        names = [getattr(s, "name", s) for s in as_list(steps)] or None
        values = {**self._values, **(parameters or {})}
        return _run_verb(self.compile(), values, storages=storages, steps=names, quiet=quiet, session=self.session)

    def release_and_run(self) -> str:
        """Release, then run every step with default values; returns the run id.

        Every placeholder needs a default (or a value from ``set_placeholder``).
        """
        if _skip_verb("release_and_run"):
            return ""
        return _run_verb(self.compile(), dict(self._values), require_defaults=True, session=self.session)

    def debug(self, *args: Any, **kwargs: Any) -> None:
        raise NotSupportedYetError("step-by-step debug runs are not available yet",
                                   hint="use workflow.run(steps=[...]) to run some of the steps")

    def next(self) -> None:
        self.debug()

    def release_to_gallery(self, *args: Any, **kwargs: Any) -> None:
        raise NotSupportedYetError("publishing to AI Gallery is a ModelArts cloud feature",
                                   hint="share the workflow file and `mloop compile` spec instead")

    def __repr__(self) -> str:
        return f"Workflow(name={self.name!r}, steps={[getattr(s, 'name', s) for s in self.steps]})"


def _verb_settings(session: Any) -> Any:
    """The settings the verbs use: the defaults, with a session's server and token if it names one."""
    from mloop import runs
    from mloop.session import settings_for

    return settings_for(session, runs.default_settings())


def _run_verb(spec: Any, values: dict[str, Any], *, quiet: bool = False, session: Any = None,
              **options: Any) -> str:
    """The SDK's door to the run service: start the run here, show it live, raise StepFailed
    when it fails (so a CI job fails too); the run id."""
    import os

    from mloop import runs
    from mloop.client import client_for, watch_remote
    from mloop.console import Watcher

    client = client_for(_verb_settings(session))
    if client is not None:  # client mode: released, queued and run on the server, shown here
        from mloop.runs.service import select_steps

        if options.get("storages"):
            from mloop.errors import BadArgumentError

            raise BadArgumentError("storages= is not supported in client mode yet",
                                   hint="set the storage's default to a URL the server reaches")
        with client:
            released = client.release(spec)
            queued = client.submit(released["workflow"], released["version"], values,
                                   select_steps(spec, options.get("steps"), None))
            result = watch_remote(client, queued, Watcher(quiet=quiet))
        runs.raise_for_result(result)
        return str(result.run.id)
    with runs.open_backend(runs.default_settings()) as ctx:
        # A path given to run() is relative to where the script runs, as on the command line.
        result = runs.start_run(ctx, spec, values, base_dir=os.getcwd(), watch=Watcher(quiet=quiet), **options)
    runs.raise_for_result(result)
    return str(result.run.id)


def add_whitelist_users(content_id: str, version_num: str, user_groups: Any, session: Any = None) -> None:
    """ModelArts AI Gallery sharing; not available in a self-hosted mloop."""
    raise NotSupportedYetError("AI Gallery whitelists are a ModelArts cloud feature",
                               hint="share the workflow file and its algorithms' code instead")


def delete_whitelist_users(content_id: str, version_num: str, user_groups: Any, session: Any = None) -> None:
    """ModelArts AI Gallery sharing; not available in a self-hosted mloop."""
    raise NotSupportedYetError("AI Gallery whitelists are a ModelArts cloud feature",
                               hint="share the workflow file and its algorithms' code instead")
