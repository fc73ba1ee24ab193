"""mloop: continuous training of ML models.

Write a pipeline once with the ModelArts-compatible SDK (``from mloop import workflow as wf``)
and run it locally, on a team server, or on a Ray cluster.
"""

__version__ = "0.1.0"
