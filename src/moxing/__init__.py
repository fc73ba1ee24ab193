"""ModelArts compatibility: ``import moxing as mox; mox.file.copy_parallel(src, dst)`` runs
unchanged, with ``obs://`` meaning mloop's OBS root (see :mod:`mloop.compat.moxing_file`)."""

from mloop.compat import moxing_file as file

__all__ = ["file"]
