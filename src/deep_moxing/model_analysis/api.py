"""``from deep_moxing.model_analysis.api import analyse``: mloop's :func:`mloop.metrics.analysis.analyse`."""

from mloop.metrics.analysis import analyse

__all__ = ["analyse"]
