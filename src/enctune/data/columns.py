"""Which columns of a table hold the text, the optional second text and the label.

Columns are found by name (``TEXT_NAMES``, ``PAIR_NAMES``, ``LABEL_NAMES``, case-insensitive) unless
the user names them (``--text-column``, ``--text-pair-column``, ``--label-column``); a name that is
not in the file, or a column that cannot be found, is a ``UserError`` listing the file's columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from .readers import Table

TEXT_NAMES = ("text", "sentence", "review", "content", "body", "document", "tweet", "comment", "message",
              "utterance", "query", "question", "sentence1", "text_a", "premise", "input")
PAIR_NAMES = ("text_pair", "sentence2", "text_b", "hypothesis", "pair")
LABEL_NAMES = ("label", "labels", "target", "class", "category", "sentiment", "y", "stars", "rating", "output")

@dataclass
class Columns:
    text: str
    pair: str | None
    label: str | None



def pick_column(columns: list[str], wanted: str | None, names: tuple[str, ...], what: str, flag: str,
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
    text_col = pick_column(cols, text, TEXT_NAMES, "text", "--text-column", table.path)
    label_col = pick_column(cols, label, LABEL_NAMES, "label", "--label-column", table.path, required=need_label,
                      exclude=(text_col,))
    pair_col = pick_column(cols, pair, PAIR_NAMES, "text pair", "--text-pair-column", table.path, required=False,
                     exclude=(text_col, label_col or ""))
    return Columns(text_col, pair_col, label_col)
