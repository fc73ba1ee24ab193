"""The server's content-addressed store of workflow code uploaded by clients.

A client in client mode sends each file of a workflow's code folders once (``blobs/<sha256>``),
then the folder as a manifest ``{relative path: {"digest", "mode"}}``; the server builds the
folder once per manifest under ``<home>/code-store/trees/<manifest digest>/`` and the
client's spec is released pointing there. Unchanged files are never sent twice; an unchanged
folder is never built twice.

Everything a client sends is checked before it touches the disk: digests are 64 hex
characters and the bytes must hash to them; manifest paths are relative, normalised, with no
``..``, no NUL and no component starting with ``.git``; nothing is followed through a link.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from mloop.errors import BadArgumentError, NotFoundError

__all__ = ["CodeStore", "MAX_BLOB_BYTES", "MAX_FILES"]

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
#: One file of workflow code at most (datasets belong in the artifact store, not here).
MAX_BLOB_BYTES = 64 * 1024 * 1024
MAX_FILES = 20_000


def check_digest(digest: str) -> str:
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise BadArgumentError(f"not a sha256 digest: {str(digest)[:80]!r}", hint="64 lowercase hex characters")
    return digest


def check_relative(path: str) -> str:
    """``path`` if it is a safe relative POSIX path inside a folder."""
    if not isinstance(path, str) or not path or "\x00" in path or "\\" in path or len(path) > 1024:
        raise BadArgumentError(f"bad file path in the code manifest: {str(path)[:80]!r}")
    pure = PurePosixPath(path)
    if pure.is_absolute() or any(part in ("", ".", "..") for part in path.split("/")) or str(pure) != path:
        raise BadArgumentError(f"bad file path in the code manifest: {path!r}",
                               hint="paths are relative to the code folder, with no '..' or empty parts")
    return path


class CodeStore:
    """Blobs and built folders under ``root`` (made owner-only)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.trees = root / "trees"
        for folder in (root, self.blobs, self.trees):
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, 0o700)

    def blob_path(self, digest: str) -> Path:
        check_digest(digest)
        return self.blobs / digest[:2] / digest

    def missing(self, digests: list[str]) -> list[str]:
        return [d for d in dict.fromkeys(digests) if not self.blob_path(d).is_file()]

    def put_blob(self, digest: str, data: bytes) -> bool:
        """Keep ``data`` under its digest; False if it was there already.

        Raises:
            BadArgumentError: the bytes don't hash to ``digest``, or are too big.
        """
        target = self.blob_path(digest)
        if len(data) > MAX_BLOB_BYTES:
            raise BadArgumentError(f"a code file of {len(data)} bytes is over the {MAX_BLOB_BYTES} byte limit",
                                   hint="keep data out of code folders: put it in the artifact store")
        if hashlib.sha256(data).hexdigest() != digest:
            raise BadArgumentError("the uploaded bytes do not match their digest", hint="upload the file again")
        if target.is_file():
            return False
        target.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".up-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
        return True

    def build(self, manifest: dict[str, Any]) -> tuple[str, Path]:
        """The folder for ``manifest`` (``{path: {"digest", "mode"}}``), built once; its digest and path.

        Raises:
            BadArgumentError: a bad path or digest, or too many files.
            NotFoundError: a blob it names was not uploaded.
        """
        if not isinstance(manifest, dict) or len(manifest) > MAX_FILES:
            raise BadArgumentError(f"a code manifest maps at most {MAX_FILES} paths to {{digest, mode}}")
        clean: dict[str, dict[str, Any]] = {}
        for path, entry in manifest.items():
            check_relative(path)
            if not isinstance(entry, dict):
                raise BadArgumentError(f"manifest entry for {path!r} must be {{digest, mode}}")
            digest = check_digest(str(entry.get("digest", "")))
            executable = bool(entry.get("executable", False))
            clean[path] = {"digest": digest, "executable": executable}
        names = set(clean)
        for path in clean:  # a file and a folder of the same name can't both exist
            parent = PurePosixPath(path).parent
            while str(parent) != ".":
                if str(parent) in names:
                    raise BadArgumentError(f"{str(parent)!r} is both a file and a folder in the code manifest")
                parent = parent.parent
        missing = [e["digest"] for e in clean.values() if not self.blob_path(e["digest"]).is_file()]
        if missing:
            raise NotFoundError(f"{len(missing)} file(s) of the code were not uploaded",
                                hint="upload the missing blobs first (POST /api/v1/code/missing)")
        tree = hashlib.sha256(json.dumps(clean, sort_keys=True).encode()).hexdigest()
        target = self.trees / tree
        if target.is_dir():
            return tree, target
        work = Path(tempfile.mkdtemp(dir=self.trees, prefix=".build-"))
        try:
            for path, entry in clean.items():
                dest = work.joinpath(*path.split("/"))
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.blob_path(entry["digest"]), dest)
                os.chmod(dest, 0o755 if entry["executable"] else 0o644)
            os.chmod(work, 0o755)
            try:
                os.rename(work, target)
            except OSError:
                if not target.is_dir():
                    raise
                shutil.rmtree(work, ignore_errors=True)  # another request built it first
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        return tree, target

    def holds(self, folder: str) -> bool:
        """Whether ``folder`` is a tree this store built."""
        try:
            resolved = Path(folder).resolve(strict=True)
        except (OSError, RuntimeError):
            return False
        return resolved.parent == self.trees.resolve() and bool(_DIGEST.fullmatch(resolved.name))
