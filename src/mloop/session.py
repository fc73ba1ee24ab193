"""``Session``: ModelArts' ``modelarts.session.Session``, for scripts that pass one around.

ModelArts CI scripts authenticate with
``Workflow(..., session=Session(access_key=..., secret_key=..., region_name=..., project_id=...))``
(or ``Session()`` in a notebook). With the import changed to ``from mloop.session import Session``
the same script runs: every ModelArts argument is accepted and none is required.

What it means locally:

* **no cloud credentials are needed or used.** AK/SK, user name and password, region, project and
  IAM/OBS endpoints are kept on the object (secrets never shown in its ``repr``) and sent nowhere;
  a run happens in this process (or on the configured mloop server), and ``obs://`` paths live under
  the configured ``obs_root``;
* the environment-variable forms of the ModelArts documentation are read the same way when an
  argument is not given: ``HUAWEICLOUD_SDK_AK`` / ``HUAWEICLOUD_SDK_SK`` (access and secret key) and
  ``HUAWEICLOUD_SDK_PASSWORD`` (or the older ``SDK_PASSWORD``);
* **where a server is used**, a session can carry its URL and token:
  ``Session(server_url="https://mloop.example", token="...")``. A workflow built with it sends
  ``release()``/``run()``/``release_and_run()`` there, as ``MLOOP_SERVER_URL`` / ``MLOOP_TOKEN`` would.
  Without them, the usual settings decide (embedded, or the server of ``MLOOP_SERVER_URL`` / ``mloop login``).
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["Session"]

#: Environment variables read for arguments not given, as the ModelArts SDK documentation writes them.
ENV_FORMS: dict[str, tuple[str, ...]] = {
    "access_key": ("HUAWEICLOUD_SDK_AK",),
    "secret_key": ("HUAWEICLOUD_SDK_SK",),
    "password": ("HUAWEICLOUD_SDK_PASSWORD", "SDK_PASSWORD"),
}

_SECRETS = ("secret_key", "password", "token")


class Session:
    """A ModelArts-compatible session; locally, at most the mloop server to talk to.

    Args:
        config_file, access_key, secret_key, project_id, region_name, authorize_by_token, username,
            password, account: ModelArts' arguments, accepted and kept; none is needed locally.
        server_url: an mloop server the SDK verbs of a workflow built with this session use.
        token: that server's API token.
        **kwargs: other ModelArts arguments (``iam_endpoint``, ``obs_endpoint``, ...), kept in ``extra``.
    """

    def __init__(self, config_file: str | None = None, access_key: str | None = None,
                 secret_key: str | None = None, project_id: str | None = None, region_name: str | None = None,
                 authorize_by_token: bool = False, username: str | None = None, password: str | None = None,
                 account: str | None = None, *, server_url: str | None = None, token: str | None = None,
                 **kwargs: Any) -> None:
        self.config_file = config_file
        self.access_key = access_key if access_key is not None else _env("access_key")
        self.secret_key = secret_key if secret_key is not None else _env("secret_key")
        self.project_id = project_id
        self.region_name = region_name
        self.authorize_by_token = bool(authorize_by_token)
        self.username = username
        self.password = password if password is not None else _env("password")
        self.account = account
        self.server_url = server_url or None
        self.token = token or None
        self.extra = dict(kwargs)

    @property
    def mode(self) -> str:
        """``"server"`` when this session names an mloop server, else ``"local"``."""
        return "server" if self.server_url else "local"

    def settings(self, base: Any) -> Any:
        """``base`` (:class:`mloop.config.Settings`) with this session's server and token, if any."""
        if not self.server_url:
            return base
        return base.model_copy(update={"server_url": self.server_url, "token": self.token or base.token})

    def __repr__(self) -> str:
        shown = {k: v for k, v in (("region_name", self.region_name), ("project_id", self.project_id),
                                   ("server_url", self.server_url)) if v}
        given = [k for k in ("access_key", *_SECRETS) if getattr(self, k)]
        inner = ", ".join([f"{k}={v!r}" for k, v in shown.items()] + [f"{k}=***" for k in given])
        return f"Session({inner})"


def _env(field: str) -> str | None:
    for name in ENV_FORMS[field]:
        value = os.environ.get(name)
        if value:
            return value
    return None


def settings_for(session: Any, base: Any) -> Any:
    """The settings a workflow's verbs use: ``base``, with the server of ``session`` when it names one
    (any object with ``server_url`` / ``token`` attributes; a ModelArts session has none)."""
    if isinstance(session, Session):
        return session.settings(base)
    url = getattr(session, "server_url", None)
    if isinstance(url, str) and url:
        return base.model_copy(update={"server_url": url, "token": getattr(session, "token", None) or base.token})
    return base
