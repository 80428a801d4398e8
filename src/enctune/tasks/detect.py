"""Which task a data file asks for, from its shape, when ``--task`` is not given.

tokens + tags (lists): ``tag``; question + context: ``extract``; a list of labels per row:
``multilabel``; numeric labels with fractions or many distinct values: ``regress``;
anything else: ``classify``. The reason is returned so the run can say what it chose.
"""

from __future__ import annotations

from ..data.dataset import LABEL_NAMES, _pick, is_missing_label
from ..data.readers import Table

TOKEN_NAMES = ("tokens", "words")
TAG_NAMES = ("tags", "ner_tags", "labels", "label")
REGRESS_MIN_DISTINCT = 20  # integer labels with at most this many values stay classes (ratings 1-5, ids)


def _col(table: Table, names: tuple[str, ...]) -> str | None:
    lowered = {c.lower(): c for c in table.columns}
    return next((lowered[n] for n in names if n in lowered), None)


def _number(v) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    try:
        return float(str(v).strip())
    except ValueError:
        return None


def detect_task(table: Table, text_column: str | None = None, pair_column: str | None = None,
                label_column: str | None = None) -> tuple[str, str]:
    sample = table.records[:200]
    tokens, tags = _col(table, TOKEN_NAMES), _col(table, TAG_NAMES)
    if tokens and tags and all(isinstance(r.get(tokens), list) for r in sample[:20]):
        return "tag", f"columns '{tokens}' and '{tags}' hold lists of words and tags"
    question, context = _col(table, ("question",)), _col(table, ("context",))
    if question and context and not label_column:
        return "extract", f"columns '{question}' and '{context}'"
    label = label_column if label_column in table.columns else _pick(table.columns, None, LABEL_NAMES, "label",
                                                                     "--label-column", table.path, required=False)
    if label is None:
        return "classify", "no label column recognised"
    values = [r.get(label) for r in sample if not is_missing_label(r.get(label))]
    if values and all(isinstance(v, list) for v in values):
        return "multilabel", f"column '{label}' holds lists of labels"
    numbers = [_number(v) for v in (r.get(label) for r in table.records) if not is_missing_label(v)]
    if numbers and all(x is not None for x in numbers):
        fractional = any(not float(x).is_integer() for x in numbers)
        distinct = len(set(numbers))
        if fractional or distinct > REGRESS_MIN_DISTINCT:
            return "regress", (f"column '{label}' holds numbers ({distinct} distinct values"
                               f"{', with fractions' if fractional else ''})")
    return "classify", f"column '{label}' holds one label per row"
