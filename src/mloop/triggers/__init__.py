"""Git-push triggers: a push to a repository (GitHub, Gitea, GitLab webhooks) releases the
workflow file of the pushed commit and queues a run of it on the team server.

Layer: a door's helper — beside the run service's callers (the server's webhook route and
``mloop trigger``): it starts runs only through :mod:`mloop.runs` and loads workflow files
through :mod:`mloop.workflow.loading`; nothing below the doors imports it.

:mod:`.signatures` checks who sent an event, :mod:`.events` reads what was pushed, and
:mod:`.service` does the rest (dedupe, filters, fetch, release, queue).
"""
