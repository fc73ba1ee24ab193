"""The engine: runs one run of a spec — its DAG, its state machine, input resolution — knowing
no step kind by name.

Layer: engine (below the run service in :mod:`mloop.runs`). :mod:`.engine` is the scheduling
loop, :mod:`.transitions` the state tables and the only writer of statuses, :mod:`.handlers`
the interface every step kind implements (and its registry, which :mod:`mloop.steps` fills),
:mod:`.context` what a run knows while it runs, :mod:`.ownership` which process runs a run.
"""
