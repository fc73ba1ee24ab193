"""``mloop`` sub-commands, one module per area (dataset, label, model, serve, service).

Each module defines a typer app (or a command) that :mod:`mloop.cli` mounts. Modules import
their heavy dependencies inside the command functions, so ``mloop --help`` stays fast.

Layer: door (the CLI's sub-commands; they call the run service and the domain operations).
"""
