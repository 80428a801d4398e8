"""From files to checked splits: column inference, validation with places, label maps, splits.

``load_splits`` is the one entry point used by training: it reads a file or a folder of
splits, infers which columns hold the text, the optional text pair and the label, checks
every row, carves a stratified validation split from train when none is given, and warns
about duplicates and train/test overlap. Every mistake is a :class:`UserError` that names
the file, the line and the column.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from .readers import FORMATS, Table, read_table

TEXT_NAMES = ("text", "sentence", "review", "content", "body", "document", "tweet", "comment", "message",
              "utterance", "query", "question", "sentence1", "text_a", "premise", "input")
PAIR_NAMES = ("text_pair", "sentence2", "text_b", "hypothesis", "pair")
LABEL_NAMES = ("label", "labels", "target", "class", "category", "sentiment", "y", "stars", "rating", "output")
SPLIT_NAMES = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "val", "dev"),
    "test": ("test", "eval", "evaluation"),
}


@dataclass
class Examples:
    """One split: texts, optional second texts, labels as strings, and where each came from."""

    texts: list[str]
    pairs: list[str] | None
    labels: list[str] | None
    table: Table | None = None
    rows: list[int] = field(default_factory=list)  # index into table.records, for messages

    def __len__(self) -> int:
        return len(self.texts)

    def where(self, i: int) -> str:
        if self.table is None:
            return f"example {i + 1}"
        return self.table.where(self.rows[i])

    def subset(self, idx) -> Examples:
        idx = list(idx)
        return Examples(
            [self.texts[i] for i in idx],
            [self.pairs[i] for i in idx] if self.pairs is not None else None,
            [self.labels[i] for i in idx] if self.labels is not None else None,
            self.table,
            [self.rows[i] for i in idx] if self.rows else [],
        )


@dataclass
class Columns:
    text: str
    pair: str | None
    label: str | None


@dataclass
class Splits:
    train: Examples
    validation: Examples
    test: Examples | None
    columns: Columns
    labels: list[str]  # the label map: index -> label
    label_type: str  # "int" when every label is an integer, else "str"
    validation_carved: bool = False
    files: dict[str, str] = field(default_factory=dict)


def _pick(columns: list[str], wanted: str | None, names: tuple[str, ...], what: str, flag: str,
          path: Path, required: bool = True, exclude: tuple[str, ...] = ()) -> str | None:
    if wanted is not None:
        if wanted not in columns:
            raise UserError(
                f"{path}: no column '{wanted}' (given by {flag}). Columns in this file: {', '.join(columns)}."
            )
        return wanted
    lowered = {c.lower(): c for c in columns if c not in exclude}
    for name in names:
        if name in lowered:
            return lowered[name]
    if required:
        raise UserError(
            f"{path}: could not find the {what} column. Columns in this file: {', '.join(columns)}. "
            f"Name it with {flag} (looked for: {', '.join(names[:8])}, ...)."
        )
    return None


def infer_columns(table: Table, text: str | None = None, pair: str | None = None, label: str | None = None,
                  need_label: bool = True) -> Columns:
    cols = table.columns
    text_col = _pick(cols, text, TEXT_NAMES, "text", "--text-column", table.path)
    label_col = _pick(cols, label, LABEL_NAMES, "label", "--label-column", table.path, required=need_label,
                      exclude=(text_col,))
    pair_col = _pick(cols, pair, PAIR_NAMES, "text pair", "--text-pair-column", table.path, required=False,
                     exclude=(text_col, label_col or ""))
    return Columns(text_col, pair_col, label_col)


def _label_str(v) -> str | None:
    if v is None or isinstance(v, (list, dict)):
        return None
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        if np.isnan(v):
            return None
        if v.is_integer():
            return str(int(v))
    s = str(v).strip()
    return s or None


def _text_str(v) -> str | None:
    if v is None or isinstance(v, (list, dict, bool)):
        return None
    return str(v)


def examples_from_table(table: Table, columns: Columns, need_label: bool = True) -> Examples:
    """Check every row of one table and turn it into Examples."""
    texts, pairs, labels = [], [] if columns.pair else None, [] if (columns.label and need_label) else None
    empty, bad_label = [], []
    for i, rec in enumerate(table.records):
        t = _text_str(rec.get(columns.text))
        if t is None or not t.strip():
            empty.append(i)
            continue
        texts.append(t)
        if pairs is not None:
            p = _text_str(rec.get(columns.pair))
            if p is None or not p.strip():
                empty.append(i)
                texts.pop()
                continue
            pairs.append(p)
        if labels is not None:
            lab = _label_str(rec.get(columns.label))
            if lab is None:
                bad_label.append(i)
            labels.append(lab)
    if empty:
        col = columns.text if columns.pair is None else f"{columns.text}' or '{columns.pair}"
        first = ", ".join(str(table.lines[i]) for i in empty[:5])
        raise UserError(
            f"{table.path}: {len(empty)} row(s) with an empty or whitespace-only '{col}' "
            f"(line {first}{', ...' if len(empty) > 5 else ''}). Every example needs text; remove or fill them."
        )
    if bad_label:
        first = ", ".join(str(table.lines[i]) for i in bad_label[:5])
        raise UserError(
            f"{table.path}: {len(bad_label)} row(s) with a missing or invalid label in column '{columns.label}' "
            f"(line {first}{', ...' if len(bad_label) > 5 else ''}). Expected a string or an integer label."
        )
    return Examples(texts, pairs, labels, table, list(range(len(table.records))))


def _is_int(s: str) -> bool:
    try:
        int(s)
        return True
    except ValueError:
        return False


def label_map(labels: list[str]) -> tuple[list[str], str]:
    """Sorted distinct labels (numerically when all are integers) and their type."""
    distinct = set(labels)
    if all(_is_int(x) for x in distinct):
        return sorted(distinct, key=int), "int"
    return sorted(distinct), "str"


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


def carve_validation(train: Examples, fraction: float, seed: int) -> tuple[Examples, Examples]:
    """Stratified, seeded split of train into (train, validation)."""
    from sklearn.model_selection import train_test_split

    n = len(train)
    n_val = max(1, int(round(n * fraction)))
    if n - n_val < 2:
        raise UserError(f"{train.where(0).split(',')[0]}: only {n} examples; need at least 3 to carve a validation split "
                        "(or give --validation).")
    idx = np.arange(n)
    counts = Counter(train.labels or [])
    stratify = train.labels if train.labels and min(counts.values()) >= 2 and n_val >= len(counts) else None
    tr, va = train_test_split(idx, test_size=n_val, random_state=seed, stratify=stratify)
    return train.subset(sorted(tr)), train.subset(sorted(va))


def load_splits(data: str | Path, validation: str | Path | None = None, test: str | Path | None = None,
                text_column: str | None = None, pair_column: str | None = None, label_column: str | None = None,
                validation_fraction: float = 0.1, seed: int = 42) -> Splits:
    data = Path(data)
    if not data.exists():
        raise UserError(f"{data}: no such file or folder.")
    files: dict[str, Path] = find_split_files(data) if data.is_dir() else {"train": data}
    if validation is not None:
        files["validation"] = Path(validation)
    if test is not None:
        files["test"] = Path(test)

    train_table = read_table(files["train"])
    columns = infer_columns(train_table, text_column, pair_column, label_column)
    train = examples_from_table(train_table, columns)
    labels, label_type = label_map(train.labels)
    if len(labels) < 2:
        raise UserError(
            f"{files['train']}: every example has the label '{labels[0]}' in column '{columns.label}'; "
            "a classifier needs at least two classes."
        )

    def other(split: str) -> Examples | None:
        if split not in files:
            return None
        table = read_table(files[split])
        cols = infer_columns(table, columns.text, columns.pair, columns.label)
        ex = examples_from_table(table, cols)
        known = set(labels)
        unseen = [i for i, lab in enumerate(ex.labels) if lab not in known]
        if unseen:
            i = unseen[0]
            names = sorted({ex.labels[j] for j in unseen})
            raise UserError(
                f"{ex.where(i)}, column '{cols.label}': label '{ex.labels[i]}' never appears in train "
                f"({len(unseen)} row(s), labels {', '.join(names[:5])}). Train labels: {', '.join(labels)}."
            )
        return ex

    val, tst = other("validation"), other("test")
    carved = False
    if val is None:
        train, val = carve_validation(train, validation_fraction, seed)
        carved = True

    dupes = len(train) - len(set(zip(train.texts, train.pairs or [None] * len(train), strict=False)))
    if dupes:
        warnings.warn(f"{files['train']}: {dupes} exact duplicate text(s) in train.", UserWarning, stacklevel=2)
    if tst is not None:
        overlap = len(set(train.texts) & set(tst.texts))
        if overlap:
            warnings.warn(f"{overlap} text(s) appear in both train and test ({files['test']}): test scores may "
                          "be optimistic.", UserWarning, stacklevel=2)
    return Splits(train, val, tst, columns, labels, label_type, carved, {k: str(v) for k, v in files.items()})


def load_texts(path: str | Path, text_column: str | None = None, pair_column: str | None = None) -> Examples:
    """Texts (and pairs) to predict on or embed, from any supported file; labels are kept when present."""
    table = read_table(path)
    cols = infer_columns(table, text_column, pair_column, None, need_label=False)
    return examples_from_table(table, Columns(cols.text, cols.pair, None), need_label=False)
