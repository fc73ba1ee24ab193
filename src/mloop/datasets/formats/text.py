"""Text classification with text and labels in one file ("ModelArts text classfication combine 1.0").

Each non-empty line of each ``.txt``/``.csv`` file is one sample: the text, a separator, then
its label(s)::

    the screen is sharp and bright<TAB>positive
    stopped charging after a week<TAB>negative,hardware

As ModelArts documents it, the separator between text and labels is a TAB by default
(``sample_label_separator``), and several labels are separated by ``label_separator`` (``,``).
In a ``.csv`` file without TABs a comma separates them. The line is split at the *last*
separator, so the text may contain it. The sample id is ``"<file>#<line number>"``.
"""

from __future__ import annotations

from typing import Any

from mloop.datasets.formats._common import Collector, read_text
from mloop.datasets.formats.base import Sample, ScanResult

TEXT_SUFFIXES = (".txt", ".csv", ".tsv")


def scan_text_combine(c: Collector, classes: list[str] | None, params: dict[str, Any]) -> ScanResult:
    single = params.get("_file")
    files = [single] if single else [f for f in c.walk() if f.lower().endswith(TEXT_SUFFIXES)]
    label_sep = params.get("label_separator") or ","
    for rel in files:
        try:
            text = read_text(c.source / rel)
        except (OSError, UnicodeDecodeError) as exc:
            c.bad_file(rel, f"unreadable text file (UTF-8 or GBK expected): {exc}", exclude=[rel])
            continue
        sep = params.get("sample_label_separator")
        if not sep:
            sep = "," if rel.lower().endswith(".csv") and "\t" not in text else "\t"
        shown = "TAB" if sep == "\t" else repr(sep)
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            where = f"{rel}#{n}"
            body, found, tail = line.rpartition(sep)
            if not found:
                c.bad_file(where, f"no {shown} between the text and its label")
                continue
            labels = tuple(dict.fromkeys(x.strip() for x in tail.split(label_sep) if x.strip()))
            if not body.strip() or not labels:
                c.bad_file(where, "empty text" if not body.strip() else "empty label")
                continue
            c.samples.append(Sample(id=where, file=rel, labels=labels, annotation={"text": body},
                                    files=(rel,)))
    c.check_classes(classes)
    return c.finish("text files (.txt/.csv) with 'text<TAB>label' on each line")
