"""``multilabel``: any number of labels per text (or text pair).

Labels come as a JSON list, or as a string split on ``label_delimiter`` (default ",").
Head: dropout + linear, one logit per label; loss: binary cross-entropy with logits, each
label an independent yes/no. A fixed 0.5 threshold predicts nothing for rare labels once
the model has learned their base rate, so after training one threshold per label is
chosen on validation (the one that maximises that label's F1; labels absent from
validation take the best global threshold). With ``at_least_one`` (on by default when
every train row has a label) a row whose probabilities all fall below their thresholds
still gets its most likely label.

Metrics: micro-F1 (primary), macro-F1, samples-F1, exact-match (subset) accuracy and
per-label precision/recall/F1/support.
"""

from __future__ import annotations

import json
from typing import Annotated, ClassVar

import numpy as np
from pydantic import Field

from ..data import LABEL_NAMES, Examples, is_missing_label, label_str
from ..errors import UserError
from ..numeric import sigmoid
from .base import ColumnHints, Task, TaskOptions, named_column
from .registry import register

GRID = np.round(np.arange(0.02, 0.96, 0.01), 2)  # candidate thresholds on the probability


def _f1(tp, fp, fn):
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1e-12), 0.0)


class MultilabelOptions(TaskOptions):
    label_delimiter: str = Field(",", min_length=1)
    at_least_one: bool | None = None
    thresholds: list[Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]] | None = None

    def check_labels(self, n_labels: int) -> None:
        if self.thresholds is not None and len(self.thresholds) != n_labels:
            raise ValueError(f"'task_options.thresholds': {len(self.thresholds)} threshold(s) for {n_labels} "
                             "label(s); expected one per label")


@register
class MultilabelTask(Task):
    name = "multilabel"
    primary_metric = "micro_f1"
    label_space = "label sets"
    detect_order = 30
    Options: ClassVar[type[TaskOptions]] = MultilabelOptions
    label_expected = "a non-empty list of labels (JSON list, or labels separated by the delimiter)"
    defaults = {"full": {"epochs": 3, "lr": 1e-4}, "probe": {"lr": 1e-2}}

    def __init__(self, labels=None, label_type="str", class_weights=None, pair_mode="cross", label_delimiter=",",
                 at_least_one=None, thresholds=None, **options):
        super().__init__(labels, label_type, class_weights, pair_mode, **options)
        self.label_delimiter = label_delimiter
        self.at_least_one = at_least_one
        self.thresholds = np.asarray(thresholds if thresholds is not None else [0.5] * len(self.labels), dtype=float)

    @classmethod
    def claims(cls, table, hints: ColumnHints) -> str | None:
        label = named_column(table, hints.label, LABEL_NAMES)
        values = [r.get(label) for r in table.records[:200] if not is_missing_label(r.get(label))] if label else []
        if values and all(isinstance(v, list) for v in values):
            return f"column '{label}' holds lists of labels"
        return None

    def parse_label(self, value):
        if is_missing_label(value):
            return None
        if isinstance(value, str):
            s = value.strip()
            if s.startswith("["):
                try:
                    value = json.loads(s)
                except json.JSONDecodeError:
                    return None
            else:
                value = [x for x in (p.strip() for p in s.split(self.label_delimiter)) if x] if s else []
        if not isinstance(value, list) or not value:
            return None  # an empty list is a mistake more often than a choice: name the row
        out = []
        for v in value:
            label = None if isinstance(v, bool) else label_str(v)
            if label is None:  # a null, NA, list or object inside the list: name the row
                return None
            out.append(label)
        return sorted(set(out))

    def fit(self, train: Examples, column: str | None) -> None:
        names = sorted({lab for row in train.labels for lab in row})
        if len(names) < 2:
            raise UserError(f"{train.where(0).rsplit(', ', 1)[0]}: the column '{column}' holds "
                            f"{len(names)} distinct label(s); multi-label training needs at least two.")
        self.labels = names
        if self.at_least_one is None:
            self.at_least_one = all(len(row) > 0 for row in train.labels)
        self.thresholds = np.full(len(names), 0.5)

    def check(self, ex: Examples, column: str | None) -> None:
        known = set(self.labels)
        for i, row in enumerate(ex.labels):
            unseen = [lab for lab in row if lab not in known]
            if unseen:
                raise UserError(f"{ex.where(i)}, column '{column}': label '{unseen[0]}' never appears in train. "
                                f"Train labels: {', '.join(self.labels[:20])}{', ...' if len(self.labels) > 20 else ''}.")

    def stratify_key(self, ex: Examples) -> list | None:
        return None

    def build_head(self, hidden_size: int, dropout: float = 0.1):
        from .heads import linear_head  # lazy: torch (~2 s), only when a model is built

        return linear_head(hidden_size, len(self.labels), dropout, self.pair_mode)

    def encode_labels(self, labels: list):
        import torch

        index = {lab: i for i, lab in enumerate(self.labels)}
        y = torch.zeros((len(labels), len(self.labels)), dtype=torch.float32)
        for r, row in enumerate(labels):
            for lab in row:
                y[r, index[lab]] = 1.0
        return y

    def loss(self, logits, targets):
        import torch.nn.functional as F

        return F.binary_cross_entropy_with_logits(logits, targets)

    # ---- decisions --------------------------------------------------------------------------
    def predict_matrix(self, logits: np.ndarray, thresholds: np.ndarray | None = None) -> np.ndarray:
        probs = sigmoid(logits.astype(np.float64))
        pred = probs >= (self.thresholds if thresholds is None else thresholds)
        if self.at_least_one and len(pred):
            empty = ~pred.any(axis=1)
            pred[empty, probs[empty].argmax(axis=1)] = True
        return pred

    def tune_thresholds(self, logits: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Per label, the grid threshold with the best F1 on (validation) logits and targets y."""
        probs = sigmoid(logits.astype(np.float64))
        y = y.astype(bool)
        above = probs[None, :, :] >= GRID[:, None, None]  # (G, N, L)
        tp = (above & y[None]).sum(1)
        fp = (above & ~y[None]).sum(1)
        fn = (~above & y[None]).sum(1)
        f1 = _f1(tp, fp, fn)  # (G, L)
        micro = _f1(tp.sum(1), fp.sum(1), fn.sum(1))  # (G,)
        best_global = GRID[int(micro.argmax())]
        per_label = GRID[f1.argmax(0)]
        return np.where(y.any(0), per_label, best_global)

    def after_fit(self, outputs, prepared, ex) -> dict:
        self.thresholds = self.tune_thresholds(outputs, prepared.targets.numpy())
        return {"thresholds": {lab: float(t) for lab, t in zip(self.labels, self.thresholds, strict=True)},
                "at_least_one": bool(self.at_least_one)}

    # ---- evaluation -------------------------------------------------------------------------
    def metrics(self, logits: np.ndarray, targets: np.ndarray) -> dict:
        pred = self.predict_matrix(logits)
        y = targets.astype(bool)
        tp, fp, fn = (pred & y).sum(0), (pred & ~y).sum(0), (~pred & y).sum(0)
        f1 = _f1(tp, fp, fn)
        prec = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
        rec = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 0.0)
        row_tp, row_fp, row_fn = (pred & y).sum(1), (pred & ~y).sum(1), (~pred & y).sum(1)
        return {
            "micro_f1": float(_f1(tp.sum(), fp.sum(), fn.sum())),
            "macro_f1": float(f1.mean()),
            "samples_f1": float(_f1(row_tp, row_fp, row_fn).mean()) if len(y) else 0.0,
            "exact_match": float((pred == y).all(1).mean()) if len(y) else 0.0,
            "per_label": {lab: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                                "support": int(y[:, i].sum()), "threshold": float(self.thresholds[i])}
                          for i, lab in enumerate(self.labels)},
        }

    def score(self, logits: np.ndarray, targets: np.ndarray) -> float:
        """Micro-F1 at the best single threshold: cheap, and blind to the still-untuned per-label ones."""
        probs = sigmoid(logits.astype(np.float64))
        y = targets.astype(bool)
        best = 0.0
        for t in (0.1, 0.2, 0.3, 0.4, 0.5):
            p = probs >= t
            best = max(best, float(_f1((p & y).sum(), (p & ~y).sum(), (~p & y).sum())))
        return best

    def summary(self, m: dict) -> str:
        return f"micro-F1 {m['micro_f1']:.4f}  macro-F1 {m['macro_f1']:.4f}"

    def describe(self, p: dict) -> str:
        return ", ".join(p["labels"]) or "(no label)"

    def decode(self, logits: np.ndarray) -> list[dict]:
        probs = sigmoid(logits.astype(np.float64))
        pred = self.predict_matrix(logits)
        return [{"labels": [lab for lab, on in zip(self.labels, row, strict=True) if on],
                 "probabilities": {lab: float(p) for lab, p in zip(self.labels, pr, strict=True)}}
                for row, pr in zip(pred, probs, strict=True)]

    def config(self) -> dict:
        return {**super().config(), "task_options": {**self.options, "label_delimiter": self.label_delimiter,
                                                      "at_least_one": self.at_least_one,
                                                      "thresholds": [float(t) for t in self.thresholds]}}
