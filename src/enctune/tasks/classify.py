"""``classify``: one label per text (or text pair).

Head: dropout then a linear layer, logits z = W h + b with h the pooled vector (B, H).
Loss: cross-entropy, optionally with class weights (``balanced``: w_c = N / (C * n_c),
so every class contributes equally to the loss whatever its frequency).
Metrics: accuracy, macro-F1, per-class precision/recall/F1/support, confusion matrix.
Decoding: the arg-max label and the softmax probability of every label.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.dataset import Examples, _label_str, label_map
from ..errors import UserError
from .base import ClozeHead, Task, linear_head, register


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@register
class ClassifyTask(Task):
    name = "classify"
    primary_metric = "accuracy"

    label_expected = "a string or an integer label"

    def parse_label(self, value):
        return _label_str(value)

    def fit(self, train: Examples, column: str | None) -> None:
        self.labels, self.label_type = label_map(train.labels)
        if len(self.labels) < 2:
            raise UserError(f"{train.where(0).rsplit(', ', 1)[0]}: every example has the label '{self.labels[0]}' "
                            f"in column '{column}'; a classifier needs at least two classes.")

    def check(self, ex: Examples, column: str | None) -> None:
        known = set(self.labels)
        unseen = [i for i, lab in enumerate(ex.labels) if lab not in known]
        if unseen:
            i = unseen[0]
            names = sorted({ex.labels[j] for j in unseen})
            raise UserError(
                f"{ex.where(i)}, column '{column}': label '{ex.labels[i]}' never appears in train "
                f"({len(unseen)} row(s), labels {', '.join(names[:5])}). Train labels: {', '.join(self.labels)}."
            )

    def stratify_key(self, ex: Examples) -> list | None:
        return ex.labels

    def build_head(self, hidden_size: int, dropout: float = 0.1) -> nn.Module:
        # "head": "cosine" is set by strategies that start the head from label descriptions; "cloze" by the
        # zeroshot strategy's cloze mode (the checkpoint's MLM head over the mask token)
        if self.options.get("head") == "cloze":
            return ClozeHead(hidden_size, len(self.labels), **self.options.get("cloze", {}))
        return linear_head(hidden_size, len(self.labels), dropout, self.pair_mode, self.options.get("head", "linear"))

    def encode_labels(self, labels: list[str]) -> torch.Tensor:
        index = {lab: i for i, lab in enumerate(self.labels)}
        return torch.tensor([index[lab] for lab in labels], dtype=torch.long)

    @staticmethod
    def balanced_weights(targets: torch.Tensor, n_classes: int) -> list[float]:
        counts = torch.bincount(targets, minlength=n_classes).float().clamp(min=1)
        return (counts.sum() / (n_classes * counts)).tolist()

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        weight = None
        if self.class_weights is not None:
            weight = torch.tensor(self.class_weights, dtype=logits.dtype, device=logits.device)
        return F.cross_entropy(logits, targets, weight=weight)

    def metrics(self, logits: np.ndarray, targets: np.ndarray) -> dict:
        pred = logits.argmax(-1)
        n = len(self.labels)
        cm = np.zeros((n, n), dtype=np.int64)  # rows: true label, columns: predicted
        np.add.at(cm, (np.asarray(targets, dtype=np.int64), pred), 1)
        tp, s, predicted = np.diag(cm).astype(np.float64), cm.sum(1), cm.sum(0)
        p = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)  # 0 where nothing was predicted
        r = np.divide(tp, s, out=np.zeros(n), where=s > 0)
        f = np.divide(2 * p * r, p + r, out=np.zeros(n), where=(p + r) > 0)
        return {
            "accuracy": float((pred == targets).mean()),
            "macro_f1": float(f.mean()),
            "per_class": {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                                "support": int(s[i])} for i, lab in enumerate(self.labels)},
            "confusion_matrix": cm.tolist(),
        }

    def score(self, logits: np.ndarray, targets: np.ndarray) -> float:
        return float((logits.argmax(-1) == targets).mean())

    def output_label(self, i: int):
        lab = self.labels[i]
        return int(lab) if self.label_type == "int" else lab

    def summary(self, m: dict) -> str:
        return f"accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}"

    def decode(self, logits: np.ndarray) -> list[dict]:
        probs = softmax(logits.astype(np.float64))
        return [{"label": self.output_label(int(row.argmax())),
                 "probabilities": {lab: float(x) for lab, x in zip(self.labels, row, strict=False)}} for row in probs]
