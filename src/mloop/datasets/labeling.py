"""Labeling tasks, the parts that need no store: task names and types, label sets, and the
files labels arrive in (and the templates ``mloop label export`` writes).

Label files (the format follows the file's extension, or ``format=``):

* **CSV** (``.csv``, ``.tsv``): ``sample_id,label`` per row. A header row is optional; with
  one, the ``sample_id`` (or ``id``) column and the ``label`` (or ``labels``, several labels
  separated by ``;``) column are read and other columns (``text``, ``file``) are ignored.
  Without one, the first column is the sample id and every further non-empty cell a label.
  Several rows for one sample add up (multi-label). Rows whose label is blank are skipped,
  so a partly filled template imports as is. Blank lines and lines starting with ``#`` too.
* **JSON** (``.json``): ``{"sample_id": ["cat"], "other": "dog"}``, the REST body
  ``{"labels": {...}}``, or a list of ``{"sample_id": ..., "labels": [...]}`` objects
  (``id`` for ``sample_id``, ``label`` for a single label are accepted).
* **JSON lines** (``.jsonl``, ``.ndjson``): one ``{"sample_id": ..., "labels": [...]}``
  object per line.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mloop.datasets.manifest import label_problem
from mloop.errors import LabelingError

__all__ = [
    "FILE_FORMATS", "SAMPLE_LEVEL_TYPES", "TASK_TYPES", "ParsedLabels", "TemplateRow", "check_task_name",
    "file_format", "label_set", "normalise_labels", "parse_labels", "read_labels_file", "task_type_name",
    "write_template",
]

#: ``LabelTaskTypeEnum`` of the SDK (reference 4.4), member name -> value.
TASK_TYPES: dict[str, int] = {
    "IMAGE_CLASSIFICATION": 0, "OBJECT_DETECTION": 1, "IMAGE_SEGMENTATION": 3, "TEXT_CLASSIFICATION": 100,
    "NAMED_ENTITY_RECOGNITION": 101, "TEXT_TRIPLE": 102, "AUDIO_CLASSIFICATION": 200, "SPEECH_CONTENT": 201,
    "SPEECH_SEGMENTATION": 202, "TABLE": 400, "VIDEO_ANNOTATION": 600,
}
#: Task types whose labels are class names per sample: what mloop's tasks take today.
SAMPLE_LEVEL_TYPES = ("IMAGE_CLASSIFICATION", "TEXT_CLASSIFICATION", "AUDIO_CLASSIFICATION")
FILE_FORMATS = ("csv", "json", "jsonl")

#: Task names (reference 2.1): letters, digits, '_', '-' and Chinese characters, 1-64 long.
TASK_NAME_RE = re.compile(r"^[A-Za-z0-9_\-\u4e00-\u9fff]{1,64}$")
#: Problems listed in one error message (the count says how many there were).
_SHOWN = 5


def check_task_name(name: str) -> str:
    """``name`` if it is a valid task name, else LabelingError."""
    if not isinstance(name, str) or not TASK_NAME_RE.fullmatch(name):
        raise LabelingError(f"labeling task name {name!r} is not allowed",
                            hint="use 1 to 64 letters, digits, Chinese characters, '_' or '-'")
    return name


def task_type_name(value: Any) -> str:
    """The ``LabelTaskTypeEnum`` member name for ``value``: an enum member, its number
    (``0``, ``"0"``) or its name in any case (``image_classification``, ``image-classification``).

    Raises:
        LabelingError: an unknown type, or one whose labels are not per-sample class names
            (object detection boxes, segmentation masks ...), which mloop can't take yet.
    """
    name: str | None = None
    raw = getattr(value, "value", value)
    if isinstance(raw, bool):
        raw = None
    if isinstance(raw, int) or (isinstance(raw, str) and raw.strip().isdigit()):
        number = int(raw)
        name = next((k for k, v in TASK_TYPES.items() if v == number), None)
    elif isinstance(raw, str):
        key = raw.strip().upper().replace("-", "_").replace(" ", "_")
        name = key if key in TASK_TYPES else None
    supported = ", ".join(t.lower() for t in SAMPLE_LEVEL_TYPES)
    if name is None:
        raise LabelingError(f"unknown labeling task type {value!r}",
                            hint=f"use one of: {supported} (wf.data.LabelTaskTypeEnum)")
    if name not in SAMPLE_LEVEL_TYPES:
        raise LabelingError(f"labeling tasks of type {name.lower()} are not supported yet: mloop's tasks take one or "
                            "more class labels per sample", hint=f"use one of: {supported}")
    return name


def label_set(labels: Iterable[Any] | None) -> list[dict[str, Any]]:
    """A task's label set from names or ``wf.steps.Label``-like dicts (``{"name", "property",
    "type"}``), duplicates dropped, order kept.

    Raises:
        LabelingError: a label without a name, or one with a character that a labels file
            could not carry (a comma, a semicolon, a line break).
    """
    out: dict[str, dict[str, Any]] = {}
    for item in labels or ():
        entry: dict[str, Any]
        if isinstance(item, Mapping):
            entry = {k: v for k, v in item.items() if v is not None}
        else:
            entry = {"name": getattr(item, "name", item)}
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise LabelingError(f"label {item!r} has no name", hint="give every label a name: Label(name='cat')")
        name = name.strip()
        problem = label_problem(name)
        if problem:
            raise LabelingError(problem, hint="a label is a class name: letters, digits, spaces, '-', '_' ...")
        if any(c in name for c in ",;\n\r\t"):
            raise LabelingError(f"label name {name!r} contains a comma, semicolon, tab or line break",
                                hint="label files separate labels with these; pick another name")
        entry["name"] = name
        out.setdefault(name, entry)
    return list(out.values())


def normalise_labels(value: Any) -> list[str] | None:
    """A sample's labels as a list of names: ``"cat"`` -> ``["cat"]``; None for a value that
    is not a string or a list of strings."""
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(dict.fromkeys(v.strip() for v in value if v.strip()))
    return None


# -- reading label files ------------------------------------------------------------------------
@dataclass
class ParsedLabels:
    """What a labels file holds: labels by sample id, and the entries left blank."""

    labels: dict[str, list[str]] = field(default_factory=dict)
    blank: int = 0  # rows or entries with no label (a template's unfilled rows)
    rows: int = 0


def file_format(path: str | os.PathLike[str], format: str | None = None) -> str:
    """``csv``, ``json`` or ``jsonl`` for a file, from ``format`` or its extension."""
    if format:
        fmt = format.strip().lower().lstrip(".")
        fmt = {"tsv": "csv", "ndjson": "jsonl", "jsonlines": "jsonl"}.get(fmt, fmt)
        if fmt not in FILE_FORMATS:
            raise LabelingError(f"unknown labels file format {format!r}", hint=f"use one of: {', '.join(FILE_FORMATS)}")
        return fmt
    suffix = Path(os.fspath(path)).suffix.lower()
    by_suffix = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}
    if suffix not in by_suffix:
        raise LabelingError(f"can't tell the format of {os.fspath(path)} from its extension {suffix or '(none)'}",
                            hint="name it .csv, .json or .jsonl, or pass --format csv|json|jsonl")
    return by_suffix[suffix]


def read_labels_file(path: str | os.PathLike[str], format: str | None = None) -> ParsedLabels:
    """Read a labels file (see the module docstring for the formats).

    Raises:
        LabelingError: the file is missing, not UTF-8 text, malformed (every bad line listed,
            up to a few), or holds no label at all.
    """
    p = Path(os.fspath(path)).expanduser()
    fmt = file_format(p, format)
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise LabelingError(f"labels file {p} does not exist", hint="give the path of a .csv, .json or .jsonl file") from None
    except IsADirectoryError:
        raise LabelingError(f"{p} is a folder, not a labels file", hint="give a .csv, .json or .jsonl file") from None
    except UnicodeDecodeError as exc:
        raise LabelingError(f"labels file {p} is not UTF-8 text (byte {exc.start})",
                            hint="save it as UTF-8 CSV, JSON or JSON lines") from None
    parsed = parse_labels(text, fmt, source=str(p))
    if not parsed.labels:
        blank = f" ({parsed.blank} entries have no label)" if parsed.blank else ""
        raise LabelingError(f"labels file {p} holds no labels{blank}",
                            hint="fill in the label column: sample_id,label per row (mloop label import --help)")
    return parsed


def parse_labels(text: str, fmt: str, *, source: str = "<labels>") -> ParsedLabels:
    """Parse label-file text in format ``csv``, ``json`` or ``jsonl``.

    Raises:
        LabelingError: malformed content (the first few problems, with line numbers).
    """
    problems: list[str] = []
    if fmt == "csv":
        parsed = _parse_csv(text, problems, source)
    elif fmt == "json":
        parsed = _parse_json(text, problems)
    elif fmt == "jsonl":
        parsed = _parse_jsonl(text, problems)
    else:
        raise LabelingError(f"unknown labels file format {fmt!r}", hint=f"use one of: {', '.join(FILE_FORMATS)}")
    if problems:
        shown = "; ".join(problems[:_SHOWN]) + (f"; ... ({len(problems)} problems in all)" if len(problems) > _SHOWN
                                                 else "")
        raise LabelingError(f"labels file {source} is malformed: {shown}",
                            hint="nothing was recorded; fix the file and import it again (formats: mloop label import "
                                 "--help)")
    return parsed


def _add(parsed: ParsedLabels, sample_id: str, labels: Sequence[str]) -> None:
    for label in labels:
        problem = label_problem(label)
        if problem:
            raise LabelingError(f"sample {sample_id!r}: {problem}", hint="labels are class names, not paths")
    parsed.rows += 1
    if not labels:
        parsed.blank += 1
        return
    have = parsed.labels.setdefault(sample_id, [])
    have.extend(x for x in labels if x not in have)


_ID_COLUMNS = ("sample_id", "id", "sample")
_LABEL_COLUMNS = ("label", "labels")


def _parse_csv(text: str, problems: list[str], source: str) -> ParsedLabels:
    parsed = ParsedLabels()
    first = next((line for line in text.splitlines() if line.strip() and not line.startswith("#")), "")
    delimiter = "\t" if source.lower().endswith(".tsv") or ("\t" in first and "," not in first) else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    id_col, label_cols, multi = 0, None, False
    header_seen = False
    try:
        for row in reader:
            line = reader.line_num
            cells = [c.strip() for c in row]
            if not any(cells) or cells[0].startswith("#"):
                continue
            if not header_seen:
                header_seen = True
                names = [c.lower() for c in cells]
                if names[0] in _ID_COLUMNS or any(n in _ID_COLUMNS for n in names):
                    id_col = next(i for i, n in enumerate(names) if n in _ID_COLUMNS)
                    label_cols = [i for i, n in enumerate(names) if n in _LABEL_COLUMNS]
                    multi = any(names[i] == "labels" for i in label_cols)
                    if not label_cols:
                        problems.append(f"line {line}: the header has no 'label' column (columns: {', '.join(cells)})")
                        return parsed
                    continue
            sample_id = cells[id_col] if id_col < len(cells) else ""
            if label_cols is None:
                values = [c for c in cells[1:] if c]
            else:
                values = []
                for i in label_cols:
                    cell = cells[i] if i < len(cells) else ""
                    values += [v.strip() for v in cell.split(";")] if multi else [cell]
                values = [v for v in values if v]
            if not sample_id:
                if values:
                    problems.append(f"line {line}: no sample id for label(s) {', '.join(values)}")
                continue
            _add(parsed, sample_id, values)
    except csv.Error as exc:
        problems.append(f"line {reader.line_num}: {exc}")
    return parsed


def _entry(item: Any, where: str, problems: list[str], parsed: ParsedLabels) -> None:
    if not isinstance(item, Mapping):
        problems.append(f"{where}: expected an object with sample_id and labels, got {type(item).__name__}")
        return
    sample_id = item.get("sample_id", item.get("id"))
    if not isinstance(sample_id, str) or not sample_id.strip():
        problems.append(f"{where}: no sample_id (a string)")
        return
    raw = item.get("labels", item.get("label"))
    labels = [] if raw is None else normalise_labels(raw)
    if labels is None:
        problems.append(f"{where}: labels of {sample_id!r} must be a string or a list of strings, got {raw!r}")
        return
    _add(parsed, sample_id.strip(), labels)


def _parse_json(text: str, problems: list[str]) -> ParsedLabels:
    parsed = ParsedLabels()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        problems.append(f"line {exc.lineno}: not valid JSON ({exc.msg})")
        return parsed
    except RecursionError:
        problems.append("not valid JSON (nested too deeply to read)")
        return parsed
    if isinstance(data, Mapping) and isinstance(data.get("labels"), Mapping) and len(data) <= 2:
        data = data["labels"]  # the REST body {"labels": {...}, "annotator"?: ...}
    if isinstance(data, Mapping):
        for sample_id, raw in data.items():
            labels = [] if raw is None else normalise_labels(raw)
            if labels is None:
                problems.append(f"{sample_id!r}: labels must be a string or a list of strings, got {raw!r}")
                continue
            _add(parsed, str(sample_id).strip(), labels)
    elif isinstance(data, list):
        for i, item in enumerate(data):
            _entry(item, f"item {i}", problems, parsed)
    else:
        problems.append("expected an object {sample_id: [labels]} or a list of {sample_id, labels} objects")
    return parsed


def _parse_jsonl(text: str, problems: list[str]) -> ParsedLabels:
    parsed = ParsedLabels()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"line {number}: not valid JSON ({exc.msg})")
            continue
        except RecursionError:
            problems.append(f"line {number}: not valid JSON (nested too deeply to read)")
            continue
        _entry(item, f"line {number}", problems, parsed)
    return parsed


# -- templates ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TemplateRow:
    """A sample to label: its id, and what helps a person label it."""

    sample_id: str
    file: str
    text: str | None = None


def write_template(path: str | os.PathLike[str], rows: Sequence[TemplateRow], format: str | None = None) -> Path:
    """Write the samples still to label as a file to fill in and give to ``mloop label import``.

    CSV: ``sample_id,label`` (plus ``file`` when it differs from the id, and ``text`` for text
    samples); JSON and JSON lines: ``{"sample_id", "labels": [], ...}`` objects.

    Raises:
        LabelingError: the file exists (nothing is overwritten).
    """
    p = Path(os.fspath(path)).expanduser()
    fmt = file_format(p, format)
    if p.exists():
        raise LabelingError(f"{p} already exists", hint="give a new file name; nothing was written")
    with_file = any(r.file != r.sample_id for r in rows)
    with_text = any(r.text is not None for r in rows)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        if fmt == "csv":
            writer = csv.writer(fh)
            writer.writerow(["sample_id", "label"] + (["file"] if with_file else []) + (["text"] if with_text else []))
            for r in rows:
                writer.writerow([r.sample_id, ""] + ([r.file] if with_file else []) + ([r.text or ""] if with_text else []))
        else:
            items = []
            for r in rows:
                item: dict[str, Any] = {"sample_id": r.sample_id, "labels": []}
                if with_file:
                    item["file"] = r.file
                if r.text is not None:
                    item["text"] = r.text
                items.append(item)
            if fmt == "json":
                json.dump(items, fh, ensure_ascii=False, indent=1)
            else:
                fh.writelines(json.dumps(i, ensure_ascii=False) + "\n" for i in items)
    os.replace(tmp, p)
    return p
