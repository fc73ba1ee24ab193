"""Where a job's process runs: the executor seam (launch, poll, cancel) and its implementations.

Layer: executors (below the handlers; imports only errors and, in implementations, the
artifact store). Executors never see specs, runs or the metadata store.
"""
