"""``wf.resource``: the workspace (project) workflows belong to."""

from __future__ import annotations

__all__ = ["Workspace"]


class Workspace:
    """A tenant workspace. mloop keeps one process-wide instance, id ``"0"`` by default."""

    _instance: "Workspace | None" = None

    def __init__(self, workspace_id: str = "0") -> None:
        self.workspace_id = workspace_id

    @classmethod
    def instance(cls) -> "Workspace":
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance
