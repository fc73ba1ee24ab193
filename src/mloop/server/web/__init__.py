"""mloop's web console, served by ``mloop server`` under ``/ui``.

Server-rendered Jinja2 pages (autoescaped) with small ES modules and htmx for partial refresh;
the front-end libraries (htmx, uPlot, dagre) come from npm through ``frontend/package-lock.json``
and are copied into ``static/vendor/`` at build time (``build_support/mloop_build.py``). Pages call
the same service functions as the REST API. :func:`mount_console` adds it all to the app.
"""

from __future__ import annotations

from typing import Any

__all__ = ["mount_console"]


def mount_console(app: Any) -> None:
    """Add the console to ``app`` (the server's FastAPI app): its pages, static files at
    ``/ui/static``, the security headers on every /ui response, and the run page's router
    (``mloop.server.web.run_page``) when it exists."""
    from mloop.server.web.pages import install

    install(app)
