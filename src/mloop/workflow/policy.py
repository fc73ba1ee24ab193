"""``wf.policy``: scenes for partial runs (named subsets of a workflow's steps)."""

from __future__ import annotations

from typing import Any

from mloop.spec import models as m
from mloop.workflow._base import SpecContext, as_list, name_of

__all__ = ["Policy", "Scene"]


class Scene:
    """A named subset of steps that can be run on its own (``mloop run --scene NAME``)."""

    def __init__(self, scene_name: str, scene_steps: Any = None) -> None:
        self.scene_name, self.scene_steps = scene_name, scene_steps

    def _to_spec(self, ctx: SpecContext, loc: str) -> m.SceneSpec:
        names = []
        for step in as_list(self.scene_steps):
            name = getattr(step, "name", step)
            if not isinstance(name, str):
                ctx.problem(loc, f"scene steps must be steps or step names, got {step!r}")
                continue
            names.append(name)
        return m.SceneSpec(name=name_of(self.scene_name), steps=names)


class Policy:
    """Partial-run scenes of a workflow."""

    def __init__(self, scenes: Any = None) -> None:
        self.scenes = scenes

    def _to_spec(self, ctx: SpecContext, loc: str) -> m.PolicySpec:
        scenes = []
        for i, scene in enumerate(as_list(self.scenes)):
            if isinstance(scene, Scene):
                scenes.append(scene._to_spec(ctx, f"{loc}.scenes[{i}]"))
            else:
                ctx.problem(f"{loc}.scenes[{i}]", f"expected wf.policy.Scene, got {scene!r}")
        return m.PolicySpec(scenes=scenes)
