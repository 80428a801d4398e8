"""One split as checked examples: texts, optional second texts, labels, and where each came from.

``examples_from_table`` checks every row of a table (a text in every row, a label in every row
when labels are needed) and names the file, the lines and the column of every row it refuses.
Labels are read by the task's ``parse_label``; ``label_str`` is the class-label reading every
classification task shares (missing-value spellings refused, numbers spelled one way).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError
from .columns import Columns
from .readers import Table


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
    negatives: list[str] | None = None  # retrieve: a hard negative document per row, when the data has them

    def __len__(self) -> int:
        return len(self.texts)

    def where(self, i: int) -> str:
        if self.table is None:
            return f"example {i + 1}"
        return self.table.where(self.rows[i])

    def __add__(self, other: Examples) -> Examples:
        """These rows, then ``other``'s; where each came from is kept when both were read from one table."""
        def cat(x, y):
            return None if x is None or y is None else list(x) + list(y)

        same = self.table is not None and self.table is other.table
        return Examples(self.texts + other.texts, cat(self.pairs, other.pairs), cat(self.labels, other.labels),
                        self.table if same else None, self.rows + other.rows if same else [],
                        cat(self.words, other.words), cat(self.ids, other.ids), cat(self.negatives, other.negatives))

    def subset(self, idx) -> Examples:
        idx = list(idx)
        def pick(xs):
            return [xs[i] for i in idx] if xs is not None else None

        return Examples(pick(self.texts), pick(self.pairs), pick(self.labels), self.table,
                        pick(self.rows) if self.rows else [], pick(self.words), pick(self.ids), pick(self.negatives))



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


def label_str(v) -> str | None:
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


def text_str(v) -> str | None:
    if v is None or isinstance(v, (list, dict, bool)):
        return None
    return str(v)


def examples_from_table(table: Table, columns: Columns, need_label: bool = True, parse_label=None,
                        expected: str = "a string or an integer label") -> Examples:
    """Check every row of one table and turn it into Examples (labels parsed by ``parse_label``)."""
    parse_label = parse_label or label_str
    texts, pairs, labels = [], [] if columns.pair else None, [] if (columns.label and need_label) else None
    empty, bad_label = [], []
    for i, rec in enumerate(table.records):
        t = text_str(rec.get(columns.text))
        if t is None or not t.strip():
            empty.append(i)
            continue
        texts.append(t)
        if pairs is not None:
            p = text_str(rec.get(columns.pair))
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
