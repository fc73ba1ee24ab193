"""The GitHub Actions runner's side of the action: inputs, outputs, job summary, commands.

A runner hands an action its inputs as ``INPUT_<NAME>`` environment variables and takes its
results back through files named by ``GITHUB_OUTPUT`` and ``GITHUB_STEP_SUMMARY`` (appended,
never rewritten: other steps write there too) and through ``::command::`` lines on stdout.
Everything here follows GitHub's documented formats, so it is tested without a runner.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TextIO

from mloop.errors import BadArgumentError

__all__ = ["Runner"]

_TRUE = ("true", "yes", "1", "on")
_FALSE = ("false", "no", "0", "off", "")


class Runner:
    """The runner environment of one action step (``os.environ`` unless given)."""

    def __init__(self, environ: Mapping[str, str] | None = None, stdout: TextIO | None = None) -> None:
        self.environ = dict(os.environ if environ is None else environ)
        self.stdout = stdout or sys.stdout

    # -- inputs --------------------------------------------------------------------------------
    def input(self, name: str, default: str = "") -> str:
        """An input's value, stripped. ``INPUT_SERVER_URL`` (as action.yml passes it) or the
        ``INPUT_SERVER-URL`` form JavaScript actions get; an unset input is ``default``."""
        upper = name.upper()
        for key in (upper.replace("-", "_"), upper.replace(" ", "_")):
            if key and f"INPUT_{key}" in self.environ:
                return self.environ[f"INPUT_{key}"].strip()
        return default

    def flag(self, name: str, default: bool) -> bool:
        """A true/false input.

        Raises:
            BadArgumentError: neither true nor false.
        """
        text = self.input(name, "true" if default else "false").lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise BadArgumentError(f"input {name!r} is {text!r}, not true or false", hint=f"set {name}: true or false")

    # -- outputs and the summary ------------------------------------------------------------------
    def set_output(self, name: str, value: str) -> None:
        """Append ``name=value`` to ``$GITHUB_OUTPUT``; a value with a line break in GitHub's
        heredoc form, under a random delimiter the value cannot contain. Without the file (not
        on a runner) the output is printed instead."""
        path = self.environ.get("GITHUB_OUTPUT")
        if "\n" in value or "\r" in value:
            delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
            while delimiter in value:  # pragma: no cover - 128 random bits
                delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
            line = f"{name}<<{delimiter}\n{value}\n{delimiter}\n"
        else:
            line = f"{name}={value}\n"
        if not path:
            self.stdout.write(f"output {line}")
            return
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line)

    def add_summary(self, markdown: str) -> None:
        """Append Markdown to the job summary (``$GITHUB_STEP_SUMMARY``); printed when unset."""
        path = self.environ.get("GITHUB_STEP_SUMMARY")
        if not path:
            self.stdout.write(markdown)
            return
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(markdown if markdown.endswith("\n") else markdown + "\n")

    # -- workflow commands ----------------------------------------------------------------------
    def error(self, message: str, title: str | None = None) -> None:
        """An error annotation (``::error title=...::message``), escaped so that any text is data."""
        props = f" title={_escape_property(title)}" if title else ""
        self.stdout.write(f"::error{props}::{_escape_data(message)}\n")
        self.stdout.flush()

    @contextmanager
    def commands_off(self) -> Iterator[None]:
        """Lines printed inside are never taken as workflow commands (``::stop-commands::``):
        a job's log or a step name could otherwise say ``::add-mask::`` or worse."""
        token = secrets.token_hex(16)
        self.stdout.write(f"::stop-commands::{token}\n")
        self.stdout.flush()
        try:
            yield
        finally:
            self.stdout.write(f"::{token}::\n")
            self.stdout.flush()

    def print(self, line: str) -> None:
        self.stdout.write(line + "\n")
        self.stdout.flush()

    # -- facts about the runner --------------------------------------------------------------------
    def run_url(self) -> str | None:
        """This Actions run's page (``$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID``)."""
        parts = [self.environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")]
        if not all(parts):
            return None
        return f"{parts[0]}/{parts[1]}/actions/runs/{parts[2]}"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
