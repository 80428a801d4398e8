"""Data for the task rows, written only into the run's temporary work folder.

- ``squad_by_title``: the SQuAD-style questions of one file split by article: the unique
  titles sorted, shuffled with ``random.Random(0)``, the first 80% of them train and the
  rest test, so no paragraph of a test article is ever seen in training.
- ``subset_folder``: for ``--quick``, a seeded prefix of every split, every field kept.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from .data import SPLITS, read_jsonl, shuffled


def write_rows(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def split_titles(titles: list[str], train_fraction: float = 0.8, seed: int = 0) -> tuple[list[str], list[str]]:
    """Sorted unique titles, shuffled with ``random.Random(seed)``; the first ``train_fraction`` train."""
    order = sorted(set(titles))
    random.Random(seed).shuffle(order)
    cut = int(train_fraction * len(order))
    return order[:cut], order[cut:]


def squad_by_title(src: Path, dst: Path, train_fraction: float = 0.8, limit: dict | None = None) -> dict:
    """Write ``dst/train.jsonl`` and ``dst/test.jsonl`` split by article title; returns the sizes."""
    rows = read_jsonl(src)
    train_titles, test_titles = split_titles([r["title"] for r in rows], train_fraction)
    keep = set(train_titles)
    parts = {"train": [r for r in rows if r["title"] in keep], "test": [r for r in rows if r["title"] not in keep]}
    for split, part in parts.items():
        if limit and split in limit:
            part = shuffled(part)[: limit[split]]
        write_rows(dst / f"{split}.jsonl", part)
        parts[split] = part
    return {"train_titles": len(train_titles), "test_titles": len(test_titles),
            "train_questions": len(parts["train"]), "test_questions": len(parts["test"])}


def subset_folder(src: Path, dst: Path, sizes: dict[str, int]) -> Path:
    """A seeded prefix (``sizes[split]`` rows) of every split in ``src``, all fields kept."""
    for split in SPLITS:
        path = src / f"{split}.jsonl"
        if path.is_file():
            write_rows(dst / f"{split}.jsonl", shuffled(read_jsonl(path))[: sizes[split]])
    return dst
