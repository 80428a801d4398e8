"""What every task provides: how it reads its rows, its head, loss, metrics and decoding.

A task is one module in this package registered under its name in ``TASKS``. The loop
and the strategies call only these methods, so a new task needs no edit elsewhere.

The path of one split through a task:

    table --columns/read--> Examples --prepare(encoder)--> Prepared (model inputs + targets)
    model outputs --evaluate_outputs / decode_outputs--> metrics / one dict per example

``level`` says what the head sees: ``sequence`` (one pooled vector per example, (B, H);
text pairs either encoded together, ``cross``, or apart, ``bi``, giving (B, 2H)) or
``token`` (every token's hidden state, (B, T, H)). Sequence-level tasks implement the
compact trio ``metrics(logits, targets)``, ``score(logits, targets)`` and
``decode(logits)``; token-level tasks override the ``*_outputs`` methods, which see the
prepared inputs and the examples as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..data.dataset import Columns, Examples, examples_from_table, infer_columns
from ..data.readers import Table
from ..errors import UserError


@dataclass
class Prepared:
    """Model inputs for one split (one row per model input) and the targets the loss needs."""

    tokens: Any  # encoders.Tokenized
    targets: Any = None  # indexed by collate_targets
    info: dict = field(default_factory=dict)  # what decoding needs (word ids, offsets, windows...)

    def __len__(self) -> int:
        return len(self.tokens)


class Task:
    name: ClassVar[str]
    primary_metric: ClassVar[str]
    level: ClassVar[str] = "sequence"
    # per-strategy defaults that suit this task better than the strategy's own (epochs, lr, batch_size)
    defaults: ClassVar[dict[str, dict]] = {}

    def __init__(self, labels: list[str] | None = None, label_type: str = "str",
                 class_weights: list[float] | None = None, pair_mode: str = "cross", **options):
        self.labels = list(labels or [])
        self.label_type = label_type
        self.class_weights = class_weights
        self.pair_mode = pair_mode
        self.options = options

    # ---- data -------------------------------------------------------------------------------
    def infer_columns(self, table: Table, text: str | None = None, pair: str | None = None,
                      label: str | None = None, need_label: bool = True) -> Columns:
        return infer_columns(table, text, pair, label, need_label)

    def parse_label(self, value) -> Any:
        """One row's label in this task's form, or None when it is missing or invalid."""
        raise NotImplementedError

    label_expected: ClassVar[str] = "a label"

    def read(self, table: Table, columns: Columns, need_label: bool = True) -> Examples:
        return examples_from_table(table, columns, need_label, self.parse_label, self.label_expected)

    preferred_pair_mode: ClassVar[str] = "cross"  # what "auto" means for this task's text pairs

    def resolve_pair_mode(self, has_pairs: bool) -> None:
        if self.pair_mode == "auto":
            self.pair_mode = self.preferred_pair_mode if has_pairs else "cross"

    def fit(self, train: Examples, column: str | None) -> None:
        """Learn what the labels are from train (label map, target statistics)."""

    def check(self, ex: Examples, column: str | None) -> None:
        """Validation and test rows against what ``fit`` learned (unseen labels...)."""

    def inputs(self, texts: list[str], pairs: list[str] | None) -> Examples:
        """Unlabelled examples from raw texts, for prediction."""
        return Examples(list(texts), list(pairs) if pairs is not None else None, None)

    def stratify_key(self, ex: Examples) -> list | None:
        return None

    # ---- model ------------------------------------------------------------------------------
    def build_head(self, hidden_size: int, dropout: float = 0.1) -> nn.Module:
        raise NotImplementedError

    def prepare(self, encoder, ex: Examples) -> Prepared:
        tokens = encoder.tokenize(ex.texts, ex.pairs, apart=self.pair_mode == "bi")
        targets = self.encode_labels(ex.labels) if ex.labels is not None else None
        return Prepared(tokens, targets)

    def encode_labels(self, labels: list) -> torch.Tensor:
        raise NotImplementedError

    def collate_targets(self, targets, idx) -> torch.Tensor:
        return targets[torch.as_tensor(idx)]

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # ---- evaluation (sequence-level trio; token tasks override the *_outputs methods) --------
    def metrics(self, logits: np.ndarray, targets: np.ndarray) -> dict:
        raise NotImplementedError

    def score(self, logits: np.ndarray, targets: np.ndarray) -> float:
        """The primary metric alone (higher is better): what early stopping watches, so it must be cheap."""
        return float(self.metrics(logits, targets)[self.primary_metric])

    def decode(self, logits: np.ndarray) -> list[dict]:
        raise NotImplementedError

    def evaluate_outputs(self, outputs, prepared: Prepared, ex: Examples) -> dict:
        return self.metrics(outputs, _np(prepared.targets))

    def score_outputs(self, outputs, prepared: Prepared, ex: Examples) -> float:
        return self.score(outputs, _np(prepared.targets))

    def decode_outputs(self, outputs, prepared: Prepared, ex: Examples) -> list[dict]:
        return self.decode(outputs)

    def after_fit(self, outputs, prepared: Prepared, ex: Examples) -> dict:
        """Fit what is chosen on validation once the weights are final (thresholds...); returns a report."""
        return {}

    def summary(self, metrics: dict) -> str:
        """One line of the main figures, for the command line and the model card."""
        return f"{self.primary_metric} {metrics[self.primary_metric]:.4f}"

    # ---- persistence ------------------------------------------------------------------------
    def config(self) -> dict:
        return {"task": self.name, "labels": self.labels, "label_type": self.label_type,
                "pair_mode": self.pair_mode, "task_options": self.options}

    @classmethod
    def from_config(cls, meta: dict) -> Task:
        return cls(meta.get("labels"), meta.get("label_type", "str"), pair_mode=meta.get("pair_mode", "cross"),
                   **(meta.get("task_options") or {}))


def _np(targets):
    return targets.numpy() if isinstance(targets, torch.Tensor) else np.asarray(targets)


class PairFeatures(nn.Module):
    """Texts encoded apart (``bi``): (B, 2H) = [u; v] -> (B, 4H) = [u; v; |u - v|; u * v]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, v = x.chunk(2, dim=-1)
        return torch.cat([u, v, (u - v).abs(), u * v], dim=-1)


class CosineLinear(nn.Module):
    """Logits from cosine similarity: z_c = s * cos(h, w_c) + b_c, h (B, H), w (C, H).

    The scale s = exp(log_scale) is learned (it starts at 20, where a cosine gap of 0.1 is a
    factor e^2 in odds). The class vectors w_c can start from label descriptions' embeddings,
    which makes the untrained head a zero-shot classifier (``strategies.labels``).
    """

    def __init__(self, hidden_size: int, outputs: int, scale: float = 20.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(outputs, hidden_size) * hidden_size ** -0.5)
        self.bias = nn.Parameter(torch.zeros(outputs))
        self.log_scale = nn.Parameter(torch.tensor(float(np.log(scale))))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        cos = nn.functional.normalize(h, dim=-1) @ nn.functional.normalize(self.weight, dim=-1).T  # (B, C)
        return self.log_scale.exp() * cos + self.bias


def _tanh_gelu() -> nn.Module:
    return nn.GELU(approximate="tanh")


CLOZE_ACTIVATIONS = {"gelu": nn.GELU, "gelu_new": _tanh_gelu, "gelu_pytorch_tanh": _tanh_gelu, "gelu_fast": _tanh_gelu,
                     "relu": nn.ReLU, "silu": nn.SiLU, "swish": nn.SiLU}


class ClozeHead(nn.Module):
    """Label scores from a checkpoint's masked-LM head, read at the mask token (``zeroshot`` in cloze mode).

        u   = LayerNorm(act(W_t h + b_t))          the MLM head's transform, h (B, H) at the mask token
        z_c = mean_{w in V_c} (E_w . u + b_w)      (B, C), V_c: label c's verbaliser tokens

    E_w and b_w are the decoder's row and bias for token w (the word embedding, when tied). A mean
    of dot products is the dot product with the mean row, so ``decoder`` holds C rows, not the
    vocabulary's V: z = E_bar u + b_bar. Built from the hidden size and C alone (the activation
    and the layer norm's epsilon are the checkpoint's, kept in the task options); the weights
    are copied from the checkpoint by ``strategies.zeroshot``.
    """

    def __init__(self, hidden_size: int, outputs: int, activation: str = "gelu", eps: float = 1e-12):
        super().__init__()
        if activation not in CLOZE_ACTIVATIONS:
            raise UserError(f"cloze head: activation '{activation}' is not one of {', '.join(CLOZE_ACTIVATIONS)}.")
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.act = CLOZE_ACTIVATIONS[activation]()
        self.norm = nn.LayerNorm(hidden_size, eps=eps)
        self.decoder = nn.Linear(hidden_size, outputs)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(self.act(self.dense(h))))  # (B, C)


def linear_head(hidden_size: int, outputs: int, dropout: float, pair_mode: str, kind: str = "linear") -> nn.Module:
    """Dropout + linear (or cosine: ``CosineLinear``), over the pooled vector (or the combined pair of
    vectors when encoded apart)."""
    if kind == "cosine":
        if pair_mode == "bi":
            raise UserError("a head started from label descriptions scores one text against each label; it "
                            "does not take text pairs encoded apart (use --pair-mode cross or --init-head random).")
        return nn.Sequential(nn.Dropout(dropout), CosineLinear(hidden_size, outputs))
    if pair_mode == "bi":
        return nn.Sequential(PairFeatures(), nn.Dropout(dropout), nn.Linear(4 * hidden_size, outputs))
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_size, outputs))


def rows_message(ex: Examples, bad: list[int], what: str) -> str:
    first = ", ".join(ex.where(i).rsplit(", ", 1)[-1] for i in bad[:5])
    path = ex.where(bad[0]).rsplit(", ", 1)[0]
    return f"{path}: {len(bad)} row(s) {what} ({first}{', ...' if len(bad) > 5 else ''})"


TASKS: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    TASKS[cls.name] = cls
    return cls


def get_task(name: str) -> type[Task]:
    if name not in TASKS:
        raise UserError(f"--task '{name}': unknown. Expected one of: {', '.join(TASKS)}.")
    return TASKS[name]
