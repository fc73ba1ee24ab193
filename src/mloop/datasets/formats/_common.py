"""What every format shares: walking a source folder, verifying images, collecting problems."""

from __future__ import annotations

import contextlib
import operator
import os
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from mloop.datasets.formats.base import Sample, ScanProblem, ScanResult
from mloop.errors import DatasetFormatError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})

# How many problems an error message lists before it says "... and N more".
SHOWN_PROBLEMS = 20

Progress = Callable[[int], None]


def is_image(rel: str) -> bool:
    """Whether a path names an image by its suffix (string slicing: called per file)."""
    dot = rel.rfind(".")
    return dot > rel.rfind("/") + 1 and rel[dot:].lower() in IMAGE_SUFFIXES


def walk(source: Path) -> list[str]:
    """Every regular file under ``source`` as a sorted POSIX path relative to it.

    Hidden files and folders (``.git``, ``.DS_Store``, ``.ipynb_checkpoints``) are not data and
    are skipped; symlinks are not followed (a link out of the folder must not pull files in).
    """
    out: list[str] = []
    stack = [("", str(source))]
    while stack:
        prefix, path = stack.pop()
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                rel = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    stack.append((rel + "/", entry.path))
                elif entry.is_file(follow_symlinks=False):
                    out.append(rel)
    out.sort()
    return out


def leaf_dirs_without_files(source: Path) -> list[str]:
    """Folders (relative POSIX paths) that hold neither files nor sub-folders, hidden ones aside."""
    empty: list[str] = []
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        files = [f for f in filenames if not f.startswith(".")]
        if not dirnames and not files and os.path.normpath(dirpath) != os.path.normpath(source):
            empty.append(Path(dirpath).relative_to(source).as_posix())
    return sorted(empty)


#: Most pixels (width x height, as the header declares them) an image may have: a 3.5 MB PNG can
#: declare 60000 x 60000 and inflate to 14 GB. Settings' ``max_image_pixels`` (``MLOOP_MAX_IMAGE_PIXELS``)
#: sets it for a dataset import (see :func:`image_pixel_limit`).
DEFAULT_MAX_IMAGE_PIXELS = 100_000_000

_max_image_pixels = DEFAULT_MAX_IMAGE_PIXELS

# Inflate PNG data this much at a time: memory stays bounded whatever the stream holds.
_INFLATE_STEP = 1 << 20


@contextlib.contextmanager
def image_pixel_limit(pixels: int | None) -> Iterator[None]:
    """Verify images against ``pixels`` (None: the default) inside the block. A module value,
    not an argument, so that the forked reader processes of :mod:`mloop.datasets.reading`
    inherit it without every caller in between passing it on."""
    global _max_image_pixels
    before = _max_image_pixels
    _max_image_pixels = int(pixels) if pixels else DEFAULT_MAX_IMAGE_PIXELS
    try:
        yield
    finally:
        _max_image_pixels = before


def _too_many_pixels(width: int, height: int, limit: int) -> str | None:
    if width * height > limit:
        return (f"image too large: it declares {width}x{height} = {width * height:,} pixels, more than the "
                f"limit of {limit:,} (setting max_image_pixels); its data was not decoded")
    return None


def verify_image(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` is not a usable image, or None when it is.

    The check is chosen per format to stay cheap on tens of thousands of small files yet catch
    what breaks training. PNG is checked here without Pillow (whose per-file overhead is ~80 us):
    signature, every chunk's CRC, IHDR first and IEND last, and the compressed image data
    inflated to exactly the size its header announces, which is stronger than Pillow's
    ``verify()`` (that one never inflates the data). JPEG has no ``verify()`` in Pillow, so it is
    decoded at reduced scale (``draft``: 1/8 of the DCT work, yet the whole entropy-coded stream
    is read, so truncation fails). Other formats are decoded in full by Pillow.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if head == _PNG_SIGNATURE:
                return _verify_png(head + fh.read())
    except OSError as exc:
        return f"unreadable file: {exc.strerror or exc}"
    return _verify_with_pillow(path)


def verify_image_bytes(data: bytes) -> str | None:
    """:func:`verify_image` on the bytes of a file already read (the same checks and reasons)."""
    if data[:8] == _PNG_SIGNATURE:
        return _verify_png(data)
    import io

    return _verify_with_pillow(io.BytesIO(data))


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def verify_images(source: Path, rels: list[str], *, progress: Progress | None = None) -> dict[str, str]:
    """Verify many images; returns ``{relative path: reason}`` for the bad ones.

    Serial on purpose: about 25 us per small PNG (70,000 in ~2 s), and worker processes would
    have to re-import the caller's ``__main__`` (spawn) or fork a possibly threaded engine.
    ``progress`` is called with the count of each chunk of 500 checked.
    """
    root = os.fspath(source)
    bad: dict[str, str] = {}
    for start in range(0, len(rels), 500):
        chunk = rels[start:start + 500]
        bad.update(_verify_chunk(root, chunk))
        if progress is not None:
            progress(len(chunk))
    return bad


def _verify_chunk(root: str, rels: list[str]) -> dict[str, str]:
    bad: dict[str, str] = {}
    for rel in rels:
        reason = verify_image(os.path.join(root, rel))
        if reason is not None:
            bad[rel] = reason
    return bad


def _verify_png(data: bytes) -> str | None:
    pos, n = 8, len(data)
    idat: list[bytes] = []
    header: tuple[int, ...] | None = None
    first = True
    while True:
        if pos + 12 > n:
            return "corrupt image: PNG is truncated (no IEND chunk)"
        length, ctype = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if end > n:
            return f"corrupt image: PNG is truncated (in a {ctype.decode('latin-1')!r} chunk)"
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        if zlib.crc32(body, zlib.crc32(ctype)) != crc:
            return f"corrupt image: bad CRC in PNG chunk {ctype.decode('latin-1')!r}"
        if first:
            if ctype != b"IHDR" or length != 13:
                return "corrupt image: PNG does not start with an IHDR chunk"
            header = struct.unpack(">IIBBBBB", body)
            first = False
        elif ctype == b"IDAT":
            idat.append(body)
        elif ctype == b"IEND":
            break
        pos = end
    assert header is not None
    width, height, depth, color, _, _, interlace = header
    if width == 0 or height == 0 or color not in _PNG_CHANNELS or not idat:
        return "corrupt image: PNG header is invalid or the image has no data"
    # The declared size first: a few KB of zlib can claim gigabytes (a decompression bomb).
    too_large = _too_many_pixels(width, height, _max_image_pixels)
    if too_large is not None:
        return too_large
    expected = _png_data_size(width, height, _PNG_CHANNELS[color] * depth, interlace)
    # Inflated step by step and counted, never kept: memory stays bounded whatever the stream holds,
    # and a stream that inflates to more than the header announces is stopped there.
    inflater = zlib.decompressobj()
    total = 0
    try:
        for chunk in idat:
            while chunk and not inflater.eof:
                total += len(inflater.decompress(chunk, _INFLATE_STEP))
                if total > expected:
                    return f"corrupt image: PNG image data holds more than the {expected} bytes its header says"
                chunk = inflater.unconsumed_tail
            if inflater.eof:
                break
        if not inflater.eof:
            total += len(inflater.flush(_INFLATE_STEP))
    except zlib.error as exc:
        return f"corrupt image: PNG image data does not inflate ({exc})"
    if not inflater.eof:
        return "corrupt image: PNG image data is truncated"
    if total > expected or (interlace == 0 and total != expected):
        return f"corrupt image: PNG image data holds {total} bytes, its header says {expected}"
    return None


# Adam7 passes: (x start, y start, x step, y step).
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _png_data_size(width: int, height: int, bits_per_pixel: int, interlace: int) -> int:
    """Bytes of inflated PNG image data (a filter byte per row) the header announces."""
    if interlace == 0:
        return height * (1 + (width * bits_per_pixel + 7) // 8)
    total = 0
    for x0, y0, dx, dy in _ADAM7:
        w, h = (width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy
        if w > 0 and h > 0:
            total += h * (1 + (w * bits_per_pixel + 7) // 8)
    return total


def _verify_with_pillow(path: str | os.PathLike[str] | BinaryIO) -> str | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            too_large = _too_many_pixels(int(im.width), int(im.height), _max_image_pixels)
            if too_large is not None:
                return too_large
            if im.format == "JPEG":
                im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))
            im.load()
    except Image.DecompressionBombError as exc:  # Pillow's own limit (2 x Image.MAX_IMAGE_PIXELS)
        return f"image too large: {exc}; its data was not decoded"
    except UnidentifiedImageError:
        return "not an image Pillow can read (unknown or corrupt header)"
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow signals corrupt data with OSError ("image file is truncated"), SyntaxError
        # ("broken PNG file") or ValueError, depending on the plugin.
        return f"corrupt image: {exc}" if str(exc) else f"corrupt image ({type(exc).__name__})"
    except Exception as exc:  # noqa: BLE001 - a decoder bug on hostile data must not stop the scan
        return f"corrupt image ({type(exc).__name__}: {exc})"
    return None


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) read from the header only, or None when it can't be read."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return int(im.width), int(im.height)
    except Exception:  # noqa: BLE001 - reported by verify_image, or as a problem by the caller
        return None


def read_text(path: Path) -> str:
    """A text file as UTF-8 (BOM dropped), falling back to GBK as ModelArts accepts both."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("gbk")


_by_id = operator.attrgetter("id")


class Collector:
    """Samples and problems of one scan.

    Two kinds of problems: *file* problems (a corrupt image, a bad annotation) concern one sample
    and, with ``clean=True``, leave it out; *source* problems (classes that don't match, an empty
    source or class folder, duplicate samples) concern the whole source and always fail.
    """

    def __init__(self, source: Path, fmt: str, *, clean: bool, only: set[str] | None,
                 progress: Progress | None, files: list[str] | None = None,
                 verified: Mapping[str, str | None] | None = None, empty_dirs: list[str] | None = None,
                 samples_for: set[str] | None = None) -> None:
        self.source = source
        self.format = fmt
        self.clean = clean
        self.only = only
        self.progress = progress
        self.files = files
        self.verified = verified or {}
        self.empty_dirs = empty_dirs
        #: Build samples only for these files (an increment: the others' samples are the base
        #: version's); the checks of the whole source still see every file. None: every file.
        self.samples_for = samples_for
        self.samples: list[Sample] = []
        self.file_problems: list[ScanProblem] = []
        self.source_problems: list[ScanProblem] = []
        self.excluded: set[str] = set()
        self.declared: list[str] = []

    # -- recording -------------------------------------------------------------------------
    def bad_file(self, path: str, reason: str, *, exclude: Iterable[str] = ()) -> None:
        """A file problem: the sample is left out; ``exclude`` are the files not to version."""
        self.file_problems.append(ScanProblem(path, reason))
        self.excluded.update(exclude)

    def bad_source(self, path: str, reason: str) -> None:
        self.source_problems.append(ScanProblem(path, reason))

    def walk(self) -> list[str]:
        """The source's files (see :func:`walk`); the list the caller gave when it walked already."""
        return self.files if self.files is not None else walk(self.source)

    def leaf_dirs_without_files(self) -> list[str]:
        """See :func:`leaf_dirs_without_files`; the caller's list when it walked already."""
        return self.empty_dirs if self.empty_dirs is not None else leaf_dirs_without_files(self.source)

    def verify(self, rels: Iterable[str]) -> dict[str, str]:
        """Verify images (those in ``only``, when given); the bad ones with the reason.

        Images the caller already verified (``verified``: path -> reason or None) are not read again.
        """
        only, verified = self.only, self.verified
        todo: list[str] = []
        bad: dict[str, str] = {}
        for rel in rels:
            if only is not None and rel not in only:
                continue
            if rel in verified:
                reason = verified[rel]
                if reason is not None:
                    bad[rel] = reason
            else:
                todo.append(rel)
        if todo:
            bad.update(verify_images(self.source, todo, progress=self.progress))
        return bad

    # -- finishing -------------------------------------------------------------------------
    def check_classes(self, declared: list[str] | None, *, folders: set[str] | None = None) -> None:
        """Labels used must be declared; with ``folders`` (one folder per class) each declared
        class needs its folder too."""
        if declared is None:
            return
        self.declared = list(declared)
        used: dict[str, str] = {}
        for sample in self.samples:
            for label in sample.labels:
                used.setdefault(label, sample.id)
        if folders is not None:
            for label in sorted(folders - set(declared)):
                self.bad_source(label, f"class folder {label!r} is not among the declared classes "
                                f"({', '.join(declared)})")
            for label in sorted(set(declared) - folders):
                self.bad_source(label, f"declared class {label!r} has no folder in the source")
        for label in sorted(set(used) - set(declared) - (folders or set())):
            self.bad_source(used[label], f"label {label!r} is not among the declared classes "
                            f"({', '.join(declared)})")

    def finish(self, what: str) -> ScanResult:
        """The result; raises :class:`DatasetFormatError` listing every problem that can't stay.

        Args:
            what: what the format expects, for the message on an empty source.
        """
        if len({s.id for s in self.samples}) != len(self.samples):  # counted only when some id repeats
            ids: dict[str, int] = {}
            for sample in self.samples:
                ids[sample.id] = ids.get(sample.id, 0) + 1
            for sid, count in sorted(ids.items()):
                if count > 1:
                    self.bad_source(sid, f"{count} samples have this same path")
        partial = self.samples_for is not None  # an increment may add files but no sample
        if not self.samples and not self.file_problems and not self.source_problems and not partial:
            self.bad_source(".", f"no samples found: the {self.format!r} format expects {what}")
        problems = list(self.source_problems)
        if not self.clean:
            problems.extend(self.file_problems)
        if problems:
            raise _format_error(self.source, self.format, problems, cleanable=not self.source_problems
                                and bool(self.file_problems))
        samples = sorted(self.samples, key=_by_id)
        if not samples and not partial:
            raise _format_error(self.source, self.format, self.file_problems, cleanable=False,
                                headline_extra=" (every sample was left out)")
        labels = set(self.declared)
        for s in samples:
            labels.update(s.labels)
        return ScanResult(format=self.format, samples=samples, classes=sorted(labels),
                          problems=sorted(self.file_problems, key=lambda p: p.path),
                          excluded=set(self.excluded))


def _format_error(source: Path, fmt: str, problems: list[ScanProblem], *, cleanable: bool,
                  headline_extra: str = "") -> DatasetFormatError:
    problems = sorted(problems, key=lambda p: p.path)
    n = len(problems)
    lines = [f"{source} does not fit the {fmt!r} format{headline_extra}: "
             f"{n} problem{'s' if n != 1 else ''}:"]
    lines.extend(f"  - {p.path}: {p.reason}" for p in problems[:SHOWN_PROBLEMS])
    if n > SHOWN_PROBLEMS:
        lines.append(f"  ... and {n - SHOWN_PROBLEMS} more")
    if cleanable:
        hint = ("fix or remove these files, or turn data cleaning on (--clean, or clean=True) to "
                "leave them out and import the rest")
    else:
        hint = "fix the source folder (or the declared classes / format) and try again"
    return DatasetFormatError("\n".join(lines), hint=hint, format=fmt, source=str(source),
                              problems=[{"path": p.path, "reason": p.reason} for p in problems])
