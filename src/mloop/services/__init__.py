"""Domain operations: datasets, labeling tasks, models, serving deploys, algorithms.

Layer: domain operations — below the step handlers, above the stores. Each is a plain function
over a :class:`~mloop.context.Context` (settings, metadata store, artifact store); a step
handler passes its run context (which is one), a door (CLI, REST API) its own. Nothing here
starts, stops or reads runs: that is the run service, :mod:`mloop.runs`, one layer up.
"""
