"""Small helpers shared by the worker modules: timing, splits, labels, scores.

Imports nothing heavy, so the orchestrator may use it too.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from .data import read_splits

WARMUP_TEXTS = 8  # predictions on this many texts before the timed pass, for every predict variant


class Stopwatch:
    """``with sw.section("train"): ...`` accumulates seconds per named section."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def section(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - t0, 3)


def write_json(path: str | Path, obj) -> None:
    """A benchmark's results as indented JSON at ``path``, its folder made when missing."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(obj, indent=2) + "\n")


@contextmanager
def scratch_dir(prefix: str):
    """A temporary folder removed afterwards, whatever happens."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def load_folder(folder: str | Path) -> dict[str, tuple[list[str], list[str]]]:
    """``{split: (texts, labels)}`` for every JSONL split in ``folder``."""
    return {s: ([r["text"] for r in rows], [str(r["label"]) for r in rows])
            for s, rows in read_splits(Path(folder)).items()}


def accuracy(predicted: list, gold: list) -> float | None:
    if not gold:
        return None
    return round(sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold), 4)


def id2label(folder: str | Path) -> dict[int, str]:
    """The label names of a Hugging Face sequence-classification folder (``config.json``)."""
    cfg = json.loads((Path(folder) / "config.json").read_text())
    return {int(k): str(v) for k, v in cfg.get("id2label", {}).items()}


def canonical_label(label, names: dict[int, str]) -> str:
    """Map a predicted label to the folder's label name, whatever form a tool returns it in.

    Tools may return the name (``positive``), the index (``1``) or the generic ``LABEL_1``;
    agreement between tools is computed on the canonical name.
    """
    if isinstance(label, int) and label in names:
        return names[label]
    text = str(label)
    m = re.fullmatch(r"(?:LABEL_)?(\d+)", text)
    if m and text not in names.values() and int(m.group(1)) in names:
        return names[int(m.group(1))]
    return text
