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
"""

from __future__ import annotations

import json

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.dataset import Examples
from ..errors import UserError
from .base import Task, linear_head, register
from .detect import _number


class CosineHead(nn.Module):
    """[u; v] (B, 2H) -> cos(W u, W v) (B, 1), W initialised to the identity."""

    def __init__(self, hidden_size: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(hidden_size, hidden_size)
        with torch.no_grad():
            self.proj.weight.copy_(torch.eye(hidden_size))
            self.proj.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, v = x.chunk(2, dim=-1)
        return F.cosine_similarity(self.proj(self.dropout(u)), self.proj(self.dropout(v)), dim=-1)[:, None]


def _rank(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

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
    preferred_pair_mode = "bi"
    label_expected = "a number (or a JSON list of numbers, one per target)"
    defaults = {"full": {"epochs": 4, "lr": 2e-5, "batch_size": 16}, "probe": {"lr": 1e-3}}

    def __init__(self, labels=None, label_type="float", class_weights=None, pair_mode="cross", shift=None,
                 scale=None, **options):
        super().__init__(labels, label_type, class_weights, pair_mode, **options)
        self.shift = np.asarray(shift if shift is not None else [0.0] * max(len(self.labels), 1), dtype=np.float64)
        self.scale = np.asarray(scale if scale is not None else [1.0] * max(len(self.labels), 1), dtype=np.float64)

    def parse_label(self, value):
        if isinstance(value, str) and value.strip().startswith("["):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                return None
        values = value if isinstance(value, list) else [value]
        out = [_number(v) if not isinstance(v, (list, dict)) and v is not None else None for v in values]
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

    def build_head(self, hidden_size: int, dropout: float = 0.1) -> nn.Module:
        if self.pair_mode == "bi":
            return CosineHead(hidden_size, dropout)
        return linear_head(hidden_size, len(self.labels), dropout, "cross")

    def encode_labels(self, labels: list) -> torch.Tensor:
        y = np.asarray(labels, dtype=np.float64)
        return torch.tensor((y - self.shift) / self.scale, dtype=torch.float32)

    def restore(self, outputs: np.ndarray) -> np.ndarray:
        return outputs.astype(np.float64) * self.scale + self.shift

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
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

    def decode(self, logits: np.ndarray) -> list[dict]:
        pred = self.restore(logits)
        if len(self.labels) == 1:
            return [{"value": float(row[0])} for row in pred]
        return [{"values": {name: float(x) for name, x in zip(self.labels, row, strict=True)}} for row in pred]

    def config(self) -> dict:
        return {**super().config(), "label_type": "float",
                "task_options": {**self.options, "shift": self.shift.tolist(), "scale": self.scale.tolist()}}
