"""mloop in CI: the GitHub Action's logic (``action.yml`` at the repository root).

The composite action installs mloop and then runs ``python -m mloop.ci.action``; everything it
does beyond installing lives here, so a test runs exactly what a runner runs, with the same
``INPUT_*`` and ``GITHUB_*`` environment. :mod:`mloop.ci.github` reads and writes the runner's
files (outputs, job summary, workflow commands), :mod:`mloop.ci.report` turns a finished run
into the job summary, and :mod:`mloop.ci.action` starts the run, embedded or on a server.

Layer: door (beside the CLI and the REST API): it starts runs through the run service
(:mod:`mloop.runs`) or the server's client (:mod:`mloop.client`), and nothing imports it.
"""
