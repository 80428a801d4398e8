"""``regress``: one or more numbers per text (or text pair).

Targets are a number, or a JSON list of numbers (several targets), in the label column.
Training sees them rescaled, z = (y - shift) / scale, and outputs are restored,
y = z * scale + shift, so the loss and learning rate do not depend on the targets' units.

Text pairs, by default, are encoded apart (``pair_mode`` ``bi``): u = Enc(a), v = Enc(b),
and the head predicts the similarity cos(W u, W v) with W (H x H) starting at the
identity, so training starts from the encoder's own similarity, which for a sentence
encoder is already a strong predictor. Targets are then rescaled to [0, 1] (shift = the
train minimum, scale = the train range) to match the cosine. ``pair_mode`` ``cross``
encodes the pair as one input with a linear head and standardised targets
(shift = mean, scale = standard deviation).

Loss: mean squared error on the rescaled targets. Metrics (per target, then averaged):
Spearman (primary) and Pearson correlation, MSE, RMSE and MAE in the original units.

Detection: a label column of numbers with fractions, or with more than REGRESS_MIN_DISTINCT
distinct values (fewer whole numbers are classes: ratings 1-5, ids).
"""

from __future__ import annotations

import json
from typing import Annotated, ClassVar

import numpy as np
from pydantic import Field

from ..data import LABEL_NAMES, Examples, is_missing_label
from ..errors import UserError
from .base import ColumnHints, Task, TaskOptions, named_column
from .registry import register

REGRESS_MIN_DISTINCT = 20  # integer labels with at most this many values stay classes (ratings 1-5, ids)
# |shift| and |scale|: any float32 output times 1e30 stays finite in float64
TargetScale = Annotated[float, Field(ge=-1e30, le=1e30, allow_inf_nan=False)]


class RegressOptions(TaskOptions):
    shift: list[TargetScale] | None = None
    scale: list[TargetScale] | None = None

    def check_labels(self, n_labels: int) -> None:
        for name in ("shift", "scale"):
            values = getattr(self, name)
            if values is not None and len(values) != max(n_labels, 1):
                raise ValueError(f"'task_options.{name}': {len(values)} value(s) for {max(n_labels, 1)} target(s); "
                                 "expected one per target")


def number(v) -> float | None:
    """A cell as a number (a numeric string included), or None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    try:
        return float(str(v).strip())
    except ValueError:
        return None


def _rank(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata  # lazy: scipy.stats costs ~0.3 s of start-up, paid only when scoring


    return rankdata(x)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return pearson(_rank(a), _rank(b))


@register
class RegressTask(Task):
    name = "regress"
    primary_metric = "spearman"
    label_space = "values"
    min_labels = 1
    detect_order = 40
    Options: ClassVar[type[TaskOptions]] = RegressOptions
    preferred_pair_mode = "bi"
    label_expected = "a number (or a JSON list of numbers, one per target)"
    defaults = {"full": {"epochs": 4, "lr": 2e-5, "batch_size": 16}, "probe": {"lr": 1e-3}}

    def __init__(self, labels=None, label_type="float", class_weights=None, pair_mode="cross", shift=None,
                 scale=None, **options):
        super().__init__(labels, label_type, class_weights, pair_mode, **options)
        self.shift = np.asarray(shift if shift is not None else [0.0] * max(len(self.labels), 1), dtype=np.float64)
        self.scale = np.asarray(scale if scale is not None else [1.0] * max(len(self.labels), 1), dtype=np.float64)

    @classmethod
    def claims(cls, table, hints: ColumnHints) -> str | None:
        label = named_column(table, hints.label, LABEL_NAMES)
        if label is None:
            return None
        numbers = [number(v) for v in (r.get(label) for r in table.records) if not is_missing_label(v)]
        if not numbers or any(x is None for x in numbers):
            return None
        fractional = any(not float(x).is_integer() for x in numbers)
        distinct = len(set(numbers))
        if fractional or distinct > REGRESS_MIN_DISTINCT:
            return f"column '{label}' holds numbers ({distinct} distinct values{', with fractions' if fractional else ''})"
        return None

    def parse_label(self, value):
        if isinstance(value, str) and value.strip().startswith("["):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                return None
        values = value if isinstance(value, list) else [value]
        out = [number(v) if not isinstance(v, (list, dict)) and v is not None else None for v in values]
        if not out or any(x is None or not np.isfinite(x) for x in out):
            return None
        return out

    def fit(self, train: Examples, column: str | None) -> None:
        k = {len(row) for row in train.labels}
        if len(k) != 1:
            i = next(i for i, row in enumerate(train.labels) if len(row) != len(train.labels[0]))
            raise UserError(f"{train.where(i)}, column '{column}': {len(train.labels[i])} target(s) where the first "
                            f"row has {len(train.labels[0])}; every row needs the same number of targets.")
        (k,) = k
        y = np.asarray(train.labels, dtype=np.float64)
        self.labels = [column or "value"] if k == 1 else [f"{column or 'value'}_{j}" for j in range(k)]
        if np.all(y.std(0) == 0):
            raise UserError(f"{train.where(0).rsplit(', ', 1)[0]}: every target in column '{column}' has the same "
                            "value; there is nothing to learn.")
        self._train_y = y

    def resolve_pair_mode(self, has_pairs: bool) -> None:
        super().resolve_pair_mode(has_pairs)
        if self.pair_mode == "bi" and len(self.labels) != 1:
            self.pair_mode = "cross"  # a cosine gives one number
        self._fit_scaling(self._train_y)

    def check(self, ex: Examples, column: str | None) -> None:
        for i, row in enumerate(ex.labels):
            if len(row) != len(self.labels):
                raise UserError(f"{ex.where(i)}, column '{column}': {len(row)} target(s); the model predicts "
                                f"{len(self.labels)}.")

    def _fit_scaling(self, y: np.ndarray) -> None:
        if self.pair_mode == "bi":
            lo, hi = y.min(0), y.max(0)
            self.shift, self.scale = lo, np.where(hi > lo, hi - lo, 1.0)
        else:
            sd = y.std(0)
            self.shift, self.scale = y.mean(0), np.where(sd > 0, sd, 1.0)

    def build_head(self, hidden_size: int, dropout: float = 0.1):
        from .heads import CosinePairHead, linear_head  # lazy: torch (~2 s), only when a model is built

        if self.pair_mode == "bi":
            return CosinePairHead(hidden_size, dropout)
        return linear_head(hidden_size, len(self.labels), dropout, "cross")

    def encode_labels(self, labels: list):
        import torch

        y = np.asarray(labels, dtype=np.float64)
        return torch.tensor((y - self.shift) / self.scale, dtype=torch.float32)

    def restore(self, outputs: np.ndarray) -> np.ndarray:
        return outputs.astype(np.float64) * self.scale + self.shift

    def loss(self, logits, targets):
        import torch.nn.functional as F

        return F.mse_loss(logits, targets)

    def metrics(self, logits: np.ndarray, targets: np.ndarray) -> dict:
        pred, y = self.restore(logits), self.restore(targets)
        per = {}
        for j, name in enumerate(self.labels):
            err = pred[:, j] - y[:, j]
            per[name] = {"spearman": spearman(pred[:, j], y[:, j]), "pearson": pearson(pred[:, j], y[:, j]),
                         "mse": float(np.mean(err ** 2)), "rmse": float(np.sqrt(np.mean(err ** 2))),
                         "mae": float(np.mean(np.abs(err)))}
        avg = {k: float(np.mean([m[k] for m in per.values()])) for k in ("spearman", "pearson", "mse", "rmse", "mae")}
        return {**avg, "per_target": per}

    def score(self, logits: np.ndarray, targets: np.ndarray) -> float:
        return float(np.mean([spearman(logits[:, j], targets[:, j]) for j in range(logits.shape[1])]))

    def summary(self, m: dict) -> str:
        return f"Spearman {m['spearman']:.4f}  Pearson {m['pearson']:.4f}  RMSE {m['rmse']:.4f}"

    def describe(self, p: dict) -> str:
        if "value" in p:
            return f"{p['value']:.4f}"
        return "  ".join(f"{k}={v:.4f}" for k, v in p["values"].items())

    def decode(self, logits: np.ndarray) -> list[dict]:
        pred = self.restore(logits)
        if len(self.labels) == 1:
            return [{"value": float(row[0])} for row in pred]
        return [{"values": {name: float(x) for name, x in zip(self.labels, row, strict=True)}} for row in pred]

    def config(self) -> dict:
        return {**super().config(), "label_type": "float",
                "task_options": {**self.options, "shift": self.shift.tolist(), "scale": self.scale.tolist()}}
