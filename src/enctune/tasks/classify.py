"""``classify``: one label per text (or text pair), of a fixed set of classes.

Head: dropout then a linear layer, logits z = W h + b with h the pooled vector (B, H); or the
same on h / ||h|| (``"head": "unit"``, the L2-solved head on frozen features); or a
cosine head started from label descriptions (``"head": "cosine"``), or a checkpoint's
masked-LM head read at a mask token (``"head": "cloze"``, zeroshot's cloze mode).
Loss: cross-entropy, optionally with class weights (``balanced``: w_c = N / (C * n_c),
so every class contributes equally to the loss whatever its frequency).
Metrics: accuracy, macro-F1, per-class precision/recall/F1/support, confusion matrix.
Decoding: the arg-max label and the softmax probability of every label.

Detection: the fallback, asked last; it claims any table (one label per row).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from ..data import LABEL_NAMES, Examples, label_map, label_str
from ..errors import UserError
from ..numeric import softmax
from .base import ColumnHints, Task, TaskOptions, named_column
from .registry import register

# the activations a cloze head may use (heads.ACTIVATIONS builds them; a test keeps the two lists equal)
CLOZE_ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu", "silu", "swish")


class ClozeOptions(TaskOptions):
    """The checkpoint's masked-LM head settings that ``ClozeHead`` is built with (zeroshot, cloze mode)."""

    model_config = TaskOptions.model_config | {"extra": "forbid"}

    activation: str = "gelu"
    eps: float = Field(1e-12, gt=0, lt=1, allow_inf_nan=False)

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, v: str) -> str:
        if v not in CLOZE_ACTIVATIONS:
            raise ValueError(f"expected one of {', '.join(CLOZE_ACTIVATIONS)}, not {v[:40]!r}")
        return v


class ClassifyOptions(TaskOptions):
    head: Literal["linear", "unit", "cosine", "cloze"] | None = None
    cloze: ClozeOptions | None = None


@register
class ClassifyTask(Task):
    name = "classify"
    primary_metric = "accuracy"
    label_space = "classes"
    calibrates = True
    label_heads = True
    unit_heads = True
    zero_shot = True
    detect_order = 100  # the fallback: every other task is asked first
    hf_problem_types = (None, "single_label_classification")
    Options: ClassVar[type[TaskOptions]] = ClassifyOptions
    label_expected = "a string or an integer label"

    @classmethod
    def claims(cls, table, hints: ColumnHints) -> str | None:
        label = named_column(table, hints.label, LABEL_NAMES)
        return f"column '{label}' holds one label per row" if label else "no label column recognised"

    def parse_label(self, value):
        return label_str(value)

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

    def balanced_weights(self, targets) -> list[float]:
        counts = np.maximum(np.bincount(np.asarray(targets), minlength=len(self.labels)), 1).astype(np.float64)
        return (counts.sum() / (len(self.labels) * counts)).tolist()

    def build_head(self, hidden_size: int, dropout: float = 0.1):
        from .heads import ClozeHead, linear_head  # lazy: torch (~2 s), only when a model is built

        # "head": "cosine" is set by strategies that start the head from label descriptions; "cloze" by the
        # zeroshot strategy's cloze mode (the checkpoint's MLM head over the mask token)
        if self.options.get("head") == "cloze":
            return ClozeHead(hidden_size, len(self.labels), **self.options.get("cloze", {}))
        return linear_head(hidden_size, len(self.labels), dropout, self.pair_mode, self.options.get("head", "linear"))

    def record_head(self, head) -> None:
        """Whether the trained head is a cosine head (started from label descriptions) or a cloze head
        (zeroshot's, its settings in options["cloze"]); a ladder's rungs may have built either before."""
        from .heads import ClozeHead, CosineLinear, UnitNorm  # lazy: torch (~2 s), only when a model is built

        if isinstance(head, ClozeHead):
            self.options["head"] = "cloze"
            return
        self.options.pop("cloze", None)
        if any(isinstance(m, CosineLinear) for m in head.modules()):
            self.options["head"] = "cosine"
        elif any(isinstance(m, UnitNorm) for m in head.modules()):
            self.options["head"] = "unit"
        else:
            self.options.pop("head", None)

    def encode_labels(self, labels: list[str]):
        import torch

        index = {lab: i for i, lab in enumerate(self.labels)}
        return torch.tensor([index[lab] for lab in labels], dtype=torch.long)

    def loss(self, logits, targets):
        import torch
        import torch.nn.functional as F

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
        probs = softmax(logits)
        return [{"label": self.output_label(int(row.argmax())),
                 "probabilities": {lab: float(x) for lab, x in zip(self.labels, row, strict=False)}} for row in probs]

    def confidence(self, logits: np.ndarray) -> np.ndarray:
        """The top probability of each row."""
        return softmax(logits).max(axis=-1)

    def describe(self, p: dict) -> str:
        probs = "  ".join(f"{k}={v:.3f}" for k, v in p["probabilities"].items())
        return f"{p['label']}  ({probs})"
