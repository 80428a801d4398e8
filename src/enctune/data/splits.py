"""Split files: which file is which split, a validation split carved from train, and unlabelled inputs.

A data folder holds ``train.<ext>`` and optionally ``validation.<ext>`` (or ``valid``, ``val``,
``dev``) and ``test.<ext>``; ``split_files`` finds them, or takes one file as train, and adds the
files given with ``--validation`` and ``--test``. ``carve_validation`` holds out a seeded,
stratified share of train when no validation file is given. ``overlap_warnings`` reports exact
duplicates in train and texts shared by train and test.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import UserError
from .columns import Columns, infer_columns
from .examples import Examples, examples_from_table
from .readers import FORMATS, read_table

SPLIT_NAMES = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "val", "dev"),
    "test": ("test", "eval", "evaluation"),
}


def find_split_files(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for f in sorted(folder.iterdir()):
        if not f.is_file() or f.suffix.lower() not in FORMATS:
            continue
        stem = f.stem.lower()
        for split, names in SPLIT_NAMES.items():
            if stem in names:
                if split in found:
                    raise UserError(f"{folder}: two files for the {split} split: {found[split].name} and {f.name}.")
                found[split] = f
    if "train" not in found:
        files = ", ".join(sorted(p.name for p in folder.iterdir())) or "(empty)"
        raise UserError(
            f"{folder}: no train file. Expected train.<ext> (and optionally validation/dev and test) "
            f"with <ext> one of {', '.join(sorted(set(FORMATS) - {'.txt'}))}. Files here: {files}."
        )
    return found


def split_files(data: str | Path, validation: str | Path | None = None,
                test: str | Path | None = None) -> dict[str, Path]:
    """split -> file: a folder's split files (or one file as train), with the files given for validation and
    test added."""
    data = Path(data)
    if not data.exists():
        raise UserError(f"{data}: no such file or folder.")
    files: dict[str, Path] = find_split_files(data) if data.is_dir() else {"train": data}
    if validation is not None:
        files["validation"] = Path(validation)
    if test is not None:
        files["test"] = Path(test)
    return files


def carve_validation(train: Examples, fraction: float, seed: int,
                     stratify_key: list | None = None) -> tuple[Examples, Examples]:
    """Seeded split of train into (train, validation), stratified by ``stratify_key`` when it allows."""
    from sklearn.model_selection import train_test_split

    n = len(train)
    n_val = max(1, int(round(n * fraction)))
    if n - n_val < 2:
        raise UserError(f"{train.where(0).split(',')[0]}: only {n} examples; need at least 3 to carve a validation split "
                        "(or give --validation).")
    idx = np.arange(n)
    counts = Counter(stratify_key or [])
    stratify = stratify_key if stratify_key and min(counts.values()) >= 2 and n_val >= len(counts) else None
    tr, va = train_test_split(idx, test_size=n_val, random_state=seed, stratify=stratify)
    return train.subset(sorted(tr)), train.subset(sorted(va))


def overlap_warnings(train: Examples, test: Examples | None, files: dict) -> None:
    """Warn about exact duplicates in train and about examples shared by train and test."""
    seen = set(zip(train.texts, train.pairs or [None] * len(train), strict=False))
    if len(train) - len(seen):
        warnings.warn(f"{files['train']}: {len(train) - len(seen)} exact duplicate text(s) in train.", UserWarning,
                      stacklevel=3)
    if test is not None:
        overlap = len(seen & set(zip(test.texts, test.pairs or [None] * len(test), strict=False)))
        if overlap:
            warnings.warn(f"{overlap} example(s) appear in both train and test ({files['test']}): test scores may "
                          "be optimistic.", UserWarning, stacklevel=3)


def read_inputs(path: str | Path, text_column: str | None = None, pair_column: str | None = None, task=None,
                prefer: Columns | None = None) -> tuple[Examples, Columns]:
    """Unlabelled inputs to predict on or embed, from any supported file (through ``task`` when given), and the
    columns they came from. Columns named by the user win; else ``prefer``'s (a run's own text and pair columns)
    when the file has them; else the usual names."""
    table = read_table(path)
    if prefer is not None and text_column is None and prefer.text in table.columns:
        text_column = prefer.text
        if pair_column is None and prefer.pair in table.columns:
            pair_column = prefer.pair
    if task is not None:  # a task that reads its own shape of rows (words for tag, question + context)
        cols = task.infer_columns(table, text_column, pair_column, None, need_label=False)
        used = Columns(cols.text, cols.pair, None)
        return task.read(table, used, need_label=False), used
    cols = infer_columns(table, text_column, pair_column, None, need_label=False)
    used = Columns(cols.text, cols.pair, None)
    return examples_from_table(table, used, need_label=False), used


def load_texts(path: str | Path, text_column: str | None = None, pair_column: str | None = None,
               task=None) -> Examples:
    """The examples of ``read_inputs``."""
    return read_inputs(path, text_column, pair_column, task)[0]


def carried_columns(ex: Examples, used: Columns, keep_text: bool = False, taken: tuple[str, ...] = ()) -> list[dict]:
    """Per example, the other columns of its input row (an id, metadata), to go beside its prediction; the text
    columns too with ``keep_text``. A column whose name the prediction takes (``taken``) is kept as
    ``input_<name>``."""
    skip = set() if keep_text else {used.text, used.pair}
    out = []
    for i in range(len(ex)):
        record = ex.table.records[ex.rows[i]] if ex.table is not None else {}
        out.append({(f"input_{k}" if k in taken else k): v for k, v in record.items() if k not in skip})
    return out
