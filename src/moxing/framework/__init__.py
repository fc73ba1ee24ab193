"""``from moxing.framework import file`` (older moxing spelling)."""

from mloop.compat import moxing_file as file

__all__ = ["file"]
