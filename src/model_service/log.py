"""ModelArts ``log``: ``logger = log.getLogger(__name__)`` in inference code."""

from logging import getLogger

__all__ = ["getLogger"]
