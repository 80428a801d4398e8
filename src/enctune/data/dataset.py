"""From files to checked splits: column inference, validation with places, label maps, splits.

``load_splits`` is the one entry point used by training: it reads a file or a folder of
splits, infers which columns hold the text, the optional text pair and the label, checks
every row, carves a stratified validation split from train when none is given, and warns
about duplicates and train/test overlap. Every mistake is a :class:`UserError` that names
the file, the line and the column.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    labels: list | None  # in the task's form: a string, a list of strings, numbers, tags, answers
    table: Table | None = None
    rows: list[int] = field(default_factory=list)  # index into table.records, for messages
    words: list[list[str]] | None = None  # tag: the words of each example (texts holds them joined)
    ids: list | None = None  # extract: question ids, when the data has them

    def __len__(self) -> int:
        return len(self.texts)

    def where(self, i: int) -> str:
        if self.table is None:
            return f"example {i + 1}"
        return self.table.where(self.rows[i])

    def subset(self, idx) -> Examples:
        idx = list(idx)
        def pick(xs):
            return [xs[i] for i in idx] if xs is not None else None

        return Examples(pick(self.texts), pick(self.pairs), pick(self.labels), self.table,
                        pick(self.rows) if self.rows else [], pick(self.words), pick(self.ids))


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
    task: Any  # tasks.Task, fitted on train (label map, target statistics)
    validation_carved: bool = False
    files: dict[str, str] = field(default_factory=dict)
    task_reason: str = ""

    @property
    def labels(self) -> list[str]:
        return self.task.labels

    @property
    def label_type(self) -> str:
        return self.task.label_type


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


# Cells that mean "no label", not a class: pandas' default na_values (what pandas itself reads as missing; it
# writes NaN as an empty cell, and astype(str) gives "nan" and "<NA>"), R's NA, Excel's #N/A, SQL's NULL and
# the \N of MySQL and PostgreSQL dumps. "None" is left out though pandas lists it: it is a real class name
# often enough (no toxicity, no entity, no defect) that reading it as a hole would drop a class unseen.
MISSING_LABELS = frozenset({
    "", "NA", "N/A", "n/a", "#N/A", "#N/A N/A", "#NA", "<NA>", "NaN", "nan", "-NaN", "-nan", "NULL", "null",
    "\\N", "-1.#IND", "-1.#QNAN", "1.#IND", "1.#QNAN",
})
# Integer-valued decimals as writers spell whole numbers held in a float column ("1.0", "-2.00", "3."). The
# integer part must be written canonically: "01" and "007" are codes (zero-padded ids, ICD or ZIP codes) whose
# padding is part of the name, "1e3" is a numeral no writer uses for a whole number in a label column and as
# often a code, and a real fraction ("0.5") stays the class name it was written as.
INTEGER_VALUED = re.compile(r"[+-]?(0|[1-9][0-9]*)(\.0*)?")
# An integer as str(int) writes it, short enough for int() to read back (Python refuses over 4,300 digits).
CANONICAL_INT = re.compile(r"-?(0|[1-9][0-9]{0,4000})")


def _label_str(v) -> str | None:
    """One class label as a string, or None when it is missing: None, NaN, a list or an object, or a string in
    MISSING_LABELS. Numbers are spelled one way whatever the format wrote: 1, 1.0, "1.0" and "+1" are all "1",
    so "0" and "0.0" in one column are one class."""
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
    if s in MISSING_LABELS:
        return None
    m = INTEGER_VALUED.fullmatch(s)
    if m is None:
        return s
    digits = m.group(1)  # already without leading zeros: no int(), which refuses very long numerals
    return "-" + digits if s[0] == "-" and digits != "0" else digits


def is_missing_label(v) -> bool:
    """Whether a cell means "no label" (None, NaN or a spelling in MISSING_LABELS), whatever the task."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return True
    return isinstance(v, str) and v.strip() in MISSING_LABELS


def _text_str(v) -> str | None:
    if v is None or isinstance(v, (list, dict, bool)):
        return None
    return str(v)


def examples_from_table(table: Table, columns: Columns, need_label: bool = True, parse_label=None,
                        expected: str = "a string or an integer label") -> Examples:
    """Check every row of one table and turn it into Examples (labels parsed by ``parse_label``)."""
    parse_label = parse_label or _label_str
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
            lab = parse_label(rec.get(columns.label))
            if lab is None:
                bad_label.append(i)
            labels.append(lab)
    if empty:
        col = columns.text if columns.pair is None else f"{columns.text}' or '{columns.pair}"
        first = ", ".join(str(table.lines[i]) for i in empty[:5])
        raise UserError(
            f"{table.path}: {len(empty)} row(s) with an empty or whitespace-only '{col}' "
            f"({table.unit} {first}{', ...' if len(empty) > 5 else ''}). Every example needs text; remove or fill "
            "them."
        )
    if bad_label:
        raise UserError(_bad_labels_message(table, columns.label, bad_label, expected))
    return Examples(texts, pairs, labels, table, list(range(len(table.records))))


def _bad_labels_message(table: Table, column: str, bad: list[int], expected: str) -> str:
    """Rows with no usable label: where they are, the values found there, and what counts as missing."""
    first = ", ".join(str(table.lines[i]) for i in bad[:5])
    values = [table.records[i].get(column) for i in bad]
    shown = ", ".join(list(dict.fromkeys("empty" if v in (None, "") else repr(v)[:40] for v in values))[:5])
    note = ""
    if any(is_missing_label(v) for v in values):
        note = (" Empty cells and NA, N/A, #N/A, <NA>, NaN, nan, null, NULL (and other pandas missing-value "
                "spellings) mean a missing label: fill them in or drop those rows; a class that is really named "
                "so needs another name.")
    return (f"{table.path}: {len(bad)} row(s) with a missing or invalid label in column '{column}' "
            f"({table.unit} {first}{', ...' if len(bad) > 5 else ''}; found: {shown}). Expected {expected}.{note}")


def label_map(labels: list[str]) -> tuple[list[str], str]:
    """Sorted distinct labels and their type: "int" (sorted numerically) when every label is an integer
    written canonically, so that int(label) gives each one back unchanged and no two share a number ("01" and
    "1" would both be 1, "1_000" is 1000 to Python); "str" (sorted as text) otherwise."""
    distinct = set(labels)
    if all(CANONICAL_INT.fullmatch(x) for x in distinct):
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


def load_splits(data: str | Path, validation: str | Path | None = None, test: str | Path | None = None,
                text_column: str | None = None, pair_column: str | None = None, label_column: str | None = None,
                validation_fraction: float = 0.1, seed: int = 42, task: str | None = None,
                task_options: dict | None = None) -> Splits:
    """Read and check every split through the task (``task`` None or "auto": the data's shape decides)."""
    from ..tasks import detect_task, get_task

    data = Path(data)
    if not data.exists():
        raise UserError(f"{data}: no such file or folder.")
    files: dict[str, Path] = find_split_files(data) if data.is_dir() else {"train": data}
    if validation is not None:
        files["validation"] = Path(validation)
    if test is not None:
        files["test"] = Path(test)

    train_table = read_table(files["train"])
    if task in (None, "auto"):
        task, reason = detect_task(train_table, text_column, pair_column, label_column)
    else:
        reason = "chosen with --task"
    t = get_task(task)(**(task_options or {}))
    columns = t.infer_columns(train_table, text_column, pair_column, label_column)
    train = t.read(train_table, columns)
    t.fit(train, columns.label)
    t.resolve_pair_mode(train.pairs is not None)

    def other(split: str) -> Examples | None:
        if split not in files:
            return None
        table = read_table(files[split])
        ex = t.read(table, t.infer_columns(table, columns.text, columns.pair, columns.label))
        t.check(ex, columns.label)
        return ex

    val, tst = other("validation"), other("test")
    carved = False
    if val is None:
        train, val = carve_validation(train, validation_fraction, seed, t.stratify_key(train))
        carved = True

    dupes = len(train) - len(set(zip(train.texts, train.pairs or [None] * len(train), strict=False)))
    if dupes:
        warnings.warn(f"{files['train']}: {dupes} exact duplicate text(s) in train.", UserWarning, stacklevel=2)
    if tst is not None:
        overlap = len(set(zip(train.texts, train.pairs or [None] * len(train), strict=False))
                      & set(zip(tst.texts, tst.pairs or [None] * len(tst), strict=False)))
        if overlap:
            warnings.warn(f"{overlap} example(s) appear in both train and test ({files['test']}): test scores may "
                          "be optimistic.", UserWarning, stacklevel=2)
    return Splits(train, val, tst, columns, t, carved, {k: str(v) for k, v in files.items()}, reason)


def load_texts(path: str | Path, text_column: str | None = None, pair_column: str | None = None,
               task=None) -> Examples:
    """Unlabelled inputs to predict on or embed, from any supported file (through ``task`` when given)."""
    table = read_table(path)
    if task is not None:
        cols = task.infer_columns(table, text_column, pair_column, None, need_label=False)
        return task.read(table, Columns(cols.text, cols.pair, None), need_label=False)
    cols = infer_columns(table, text_column, pair_column, None, need_label=False)
    return examples_from_table(table, Columns(cols.text, cols.pair, None), need_label=False)
