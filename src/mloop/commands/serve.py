"""``mloop serve``: an HTTP inference server for a registered model."""

from __future__ import annotations
