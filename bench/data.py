"""Benchmark data: read the shared JSONL splits and write the subsets a row needs.

The data lives outside the repository (``<repo>/../shared/data`` by default) because some
of it may not be redistributed (ag_news is non-commercial). Subsets are written only into
the run's temporary work folder, which is deleted at the end, never into the repository.

Subsets are deterministic: each split is shuffled once with ``random.Random(42)`` and a
prefix is taken, so the 1k subset is contained in the 2k subset, and so on.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SEED = 42
SPLITS = ("train", "validation", "test")


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({"text": r["text"], "label": r["label"]}, ensure_ascii=False) + "\n")


def read_splits(folder: Path) -> dict[str, list[dict]]:
    """Every split present in ``folder`` (``train.jsonl``, ``validation.jsonl``, ``test.jsonl``)."""
    return {s: read_jsonl(folder / f"{s}.jsonl") for s in SPLITS if (folder / f"{s}.jsonl").is_file()}


def shuffled(rows: list[dict], seed: int = SEED) -> list[dict]:
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    return rows


def write_quick_subset(src: Path, dst: Path, n_train: int, n_val: int, n_test: int) -> Path:
    """A small train/validation/test folder drawn from ``src`` (for ``--quick``)."""
    splits = read_splits(src)
    sizes = {"train": n_train, "validation": n_val, "test": n_test}
    for split, rows in splits.items():
        write_jsonl(dst / f"{split}.jsonl", shuffled(rows)[: sizes[split]])
    return dst


def growth_pool(src: Path) -> tuple[list[dict], int]:
    """All rows of a dataset in fill order: shuffled train, then validation, then test.

    Returns the pool and the number of train rows in it (the rest are fill-ins).
    """
    splits = read_splits(src)
    pool = shuffled(splits.get("train", []))
    n_train = len(pool)
    for split in ("validation", "test"):
        pool += shuffled(splits.get(split, []))
    return pool, n_train


def write_growth_subset(pool: list[dict], n: int, dst: Path, n_val: int) -> dict | None:
    """``train.jsonl`` with the first ``n`` pool rows and a small ``validation.jsonl``.

    The validation file (enctune evaluates on it inside training) holds up to ``n_val``
    rows not used in train; when the pool has none left, rows from train are reused (the
    growth row measures time and memory, not accuracy). Returns None when the pool is
    smaller than ``n``.
    """
    if len(pool) < n:
        return None
    train = pool[:n]
    rest = pool[n:]
    val = rest[:n_val] if rest else train[:n_val]
    write_jsonl(dst / "train.jsonl", train)
    write_jsonl(dst / "validation.jsonl", val)
    return {"train": len(train), "validation": len(val), "validation_overlaps_train": not rest}


# ---- few examples a class ------------------------------------------------------------------------
def per_class_indices(rows: list[dict], k: int, seed: int) -> list[int]:
    """Up to ``k`` rows of every label (labels in sorted order), drawn with ``random.Random(seed)``; indices into
    ``rows`` in the order drawn. Every few-shot, self-training and pre-training bench draws its samples here, so
    that the same seed gives every tool and every script the same examples."""
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_label.setdefault(str(r["label"]), []).append(i)
    return [i for label in sorted(by_label) for i in rng.sample(by_label[label], min(k, len(by_label[label])))]


def write_sample(src: Path, dst: Path, k: int, seed: int, test_rows: int | None = None, pool: Path | None = None,
                 file_order: bool = False) -> dict:
    """``dst/train.jsonl``: ``k`` examples a class of ``src``'s train split (labels as strings); ``dst/test.jsonl``:
    its test split (the first ``test_rows``); with ``pool``, every other train text, unlabelled, into that file.
    ``file_order`` writes the sample in the train file's order instead of the order drawn."""
    rows = read_jsonl(src / "train.jsonl")
    picked = per_class_indices(rows, k, seed)
    if file_order:
        picked = sorted(picked)
    test = read_jsonl(src / "test.jsonl")[:test_rows]
    write_jsonl(dst / "train.jsonl", [{"text": rows[i]["text"], "label": str(rows[i]["label"])} for i in picked])
    write_jsonl(dst / "test.jsonl", [{"text": r["text"], "label": str(r["label"])} for r in test])
    sizes = {"train": len(picked), "test": len(test)}
    if pool is not None:
        chosen = set(picked)
        rest = [r["text"] for i, r in enumerate(rows) if i not in chosen]
        pool.parent.mkdir(parents=True, exist_ok=True)
        pool.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in rest), encoding="utf-8")
        sizes["pool"] = len(rest)
    return sizes


def main(argv=None) -> int:
    """``python -m bench.data SRC DST --per-class K --seed S [--test-rows N] [--pool FILE] [--file-order]``"""
    import argparse

    ap = argparse.ArgumentParser(description="Write K examples a class of a dataset's train split, and its test.")
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--per-class", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-rows", type=int, default=None, help="the first N test rows (default: all)")
    ap.add_argument("--pool", type=Path, default=None, help="also write every other train text, unlabelled, here")
    ap.add_argument("--file-order", action="store_true", help="the sample in the train file's order")
    a = ap.parse_args(argv)
    print(json.dumps(write_sample(a.src, a.dst, a.per_class, a.seed, a.test_rows, a.pool, a.file_order)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
