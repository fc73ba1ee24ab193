"""The mloop SDK, with the surface of the ModelArts Workflow SDK.

    from mloop import workflow as wf

Everything a pipeline is built from: ``wf.Workflow``, ``wf.Placeholder``, the algorithms,
``wf.data.*`` (data objects, placeholders, storages), ``wf.steps.*`` (steps, inputs,
outputs, conditions) and ``wf.policy.*`` (partial-run scenes).

Layer: door (the SDK builds specs without I/O; its verbs ``release``, ``run`` and
``release_and_run`` call the run service in :mod:`mloop.runs`).
"""

from mloop.workflow import data, policy, resource, steps
from mloop.workflow import interface
from mloop.workflow._job import AIGalleryAlgorithm, Algorithm, AlgorithmParameters, BaseAlgorithm
from mloop.workflow.core import Subgraph, Workflow, add_whitelist_users, delete_whitelist_users
from mloop.workflow.placeholder import Placeholder, PlaceholderType, SystemEnv

#: The seed documentation writes ``wf.workflow``; it is the Workflow class.
workflow = Workflow

__all__ = [
    "data", "steps", "policy", "resource", "interface",
    "Workflow", "workflow", "Subgraph", "Placeholder", "PlaceholderType", "AlgorithmParameters",
    "BaseAlgorithm", "Algorithm", "AIGalleryAlgorithm", "SystemEnv", "add_whitelist_users",
    "delete_whitelist_users",
]
