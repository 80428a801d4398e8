"""What every task provides: the rows it reads, what it can do, its head, loss, metrics and decoding.

A task is one module in this package; it registers itself (``@register``) and the package
finds it (``tasks/__init__.py`` imports every module here), so a new task needs no edit
elsewhere. The rest of enctune asks a task what it can do (the capability attributes below)
and never compares its name.

The path of one split through a task:

    table --claims/infer_columns/read--> Examples --prepare(encoder)--> Prepared (model inputs + targets)
    model outputs --evaluate_outputs / decode_outputs--> metrics / one dict per example

``level`` says what the head sees: ``sequence`` (one pooled vector per example, (B, H);
text pairs either encoded together, ``cross``, or apart, ``bi``, giving (B, 2H)) or
``token`` (every token's hidden state, (B, T, H)). Sequence-level tasks implement the
compact trio ``metrics(logits, targets)``, ``score(logits, targets)`` and ``decode(logits)``
on NumPy arrays; token-level tasks override the ``*_outputs`` methods, which see the
prepared inputs and the examples as well.

Task modules import torch only inside the methods that train (``build_head``, ``loss``,
``encode_labels``, ``collate_targets``): reading, detection, metrics and decoding run
without it, so the ONNX predictor and the HTTP server decode through the same code as the
PyTorch predictor without importing torch (about 1.5 s of start-up, see ARCHITECTURE.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

from ..data import Columns, Examples, Table, examples_from_table, infer_columns
from ..errors import UserError

# the task constructor's arguments that enctune.json holds outside task_options: a second value is a TypeError
RESERVED_OPTIONS = frozenset({"labels", "label_type", "class_weights", "pair_mode"})


class TaskOptions(BaseModel):
    """A model folder's ``task_options``: what the task is built with beyond its labels, as ``config()``
    writes them. Strict (a wrong JSON type is refused, never converted) and open (flags given at training that
    the task does not use are kept there and do nothing); a task types its own options by subclassing."""

    model_config = ConfigDict(strict=True, extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _no_clash(cls, data):
        clash = sorted(RESERVED_OPTIONS & set(data)) if isinstance(data, dict) else []
        if clash:
            raise ValueError(f"{clash[0]!r} is not an option (it is a field of enctune.json itself)")
        return data

    def check_labels(self, n_labels: int) -> None:
        """ValueError when an option sized by the labels has another size."""


@dataclass
class Prepared:
    """Model inputs for one split (one row per model input) and the targets the loss needs."""

    tokens: Any  # encoders.Tokenized
    targets: Any = None  # indexed by collate_targets
    info: dict = field(default_factory=dict)  # what decoding needs (word ids, offsets, windows...)

    def __len__(self) -> int:
        return len(self.tokens)


@dataclass
class ColumnHints:
    """The columns the user named (None: found by name), which detection takes into account."""

    text: str | None = None
    pair: str | None = None
    label: str | None = None


class Task:
    name: ClassVar[str]
    primary_metric: ClassVar[str]
    level: ClassVar[str] = "sequence"
    # ---- what the task can do: the rest of enctune asks these, never the task's name -------------------
    # what one example's label is: "classes" (exactly one of a fixed set), "label sets" (any number of a fixed
    # set), "values" (numbers), "tags" (one of a set per word), "spans" (a piece of the input)
    label_space: ClassVar[str] = "classes"
    calibrates: ClassVar[bool] = False  # softmax outputs: temperature scaling, ECE, abstaining, refinement
    label_heads: ClassVar[bool] = False  # a head can start from the labels' descriptions (--init-head labels)
    unit_heads: ClassVar[bool] = False  # a head can read unit-length vectors (options "head": "unit")
    zero_shot: ClassVar[bool] = False  # classifiable from label descriptions with nothing trained
    pipeline_tag: ClassVar[str | None] = None  # the model card's Hugging Face pipeline tag; None: from level
    pairs_optional: ClassVar[bool] = False  # trained on pairs, yet a single text predicts too (its embedding)
    has_head: ClassVar[bool] = True
    # the loss compares the rows of a batch (in-batch negatives): a batch cut into passes by the token cap
    # keeps its loss through gradient caching (training.gradcache) instead of becoming several smaller batches
    whole_batch_loss: ClassVar[bool] = False
    reranks: ClassVar[bool] = False  # scores (query, document) pairs: `search --rerank` reorders hits with it  # False: the product is the encoder's embedding, so only a trained encoder learns
    min_labels: ClassVar[int] = 2  # fewer after ``fit`` is a UserError (and a damaged model folder)
    padding_side: ClassVar[str | None] = None  # "right" for targets laid out per token; None: the tokenizer's
    detect_order: ClassVar[int] = 50  # detection asks the tasks in this order (the fallback asks last)
    Options: ClassVar[type[TaskOptions]] = TaskOptions
    hf_problem_types: ClassVar[tuple] = ()  # a Hugging Face classifier folder's problem_type this task predicts
    # per-strategy defaults that suit this task better than the strategy's own (epochs, lr, batch_size)
    defaults: ClassVar[dict[str, dict]] = {}

    def __init__(self, labels: list[str] | None = None, label_type: str = "str",
                 class_weights: list[float] | None = None, pair_mode: str = "cross", **options):
        self.labels = list(labels or [])
        self.label_type = label_type
        self.class_weights = class_weights
        self.pair_mode = pair_mode
        self.options = options

    # ---- detection ------------------------------------------------------------------------------
    @classmethod
    def claims(cls, table: Table, hints: ColumnHints) -> str | None:
        """Why this task fits the shape of ``table`` (a training file), or None when it does not."""
        return None

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
        """Per example, what a split should keep in proportion (its class), or None."""
        return None

    def balanced_weights(self, targets) -> list[float]:
        """Loss weights that make every class count alike (``--class-weights balanced``)."""
        raise UserError(f"--class-weights balanced: for tasks with one class per example, not '{self.name}'.")

    # ---- model (torch is imported inside these) ---------------------------------------------
    def build_head(self, hidden_size: int, dropout: float = 0.1):
        raise NotImplementedError

    def start_head(self, head, encoder, train: Prepared) -> None:
        """Set what the head starts from on the training data, before training (nothing for most tasks)."""

    def record_head(self, head) -> None:
        """Note in the options what kind of head was trained, so that loading builds the same module (a task
        with one kind of head has nothing to note)."""

    def prepare(self, encoder, ex: Examples) -> Prepared:
        tokens = encoder.tokenize(ex.texts, ex.pairs, apart=self.pair_mode == "bi")
        targets = self.encode_labels(ex.labels) if ex.labels is not None else None
        return Prepared(tokens, targets)

    def encode_labels(self, labels: list):
        raise NotImplementedError

    def collate_targets(self, targets, idx):
        import torch

        return targets[torch.as_tensor(idx)]

    def loss(self, logits, targets):
        raise NotImplementedError

    # ---- evaluation (sequence-level trio; token tasks override the *_outputs methods) --------
    def metrics(self, logits: np.ndarray, targets: np.ndarray) -> dict:
        raise NotImplementedError

    def score(self, logits: np.ndarray, targets: np.ndarray) -> float:
        """The primary metric alone (higher is better): what early stopping watches, so it must be cheap."""
        return float(self.metrics(logits, targets)[self.primary_metric])

    def decode(self, logits: np.ndarray) -> list[dict]:
        raise NotImplementedError

    def confidence(self, logits: np.ndarray) -> np.ndarray | None:
        """How sure each prediction is, in [0, 1] (reduced-precision predictors re-score the unsure ones in
        fp32); None when the task has no such measure."""
        return None

    def evaluate_outputs(self, outputs, prepared: Prepared, ex: Examples) -> dict:
        return self.metrics(outputs, as_numpy(prepared.targets))

    def score_outputs(self, outputs, prepared: Prepared, ex: Examples) -> float:
        return self.score(outputs, as_numpy(prepared.targets))

    def decode_outputs(self, outputs, prepared: Prepared, ex: Examples) -> list[dict]:
        return self.decode(outputs)

    def after_fit(self, outputs, prepared: Prepared, ex: Examples) -> dict:
        """Fit what is chosen on validation once the weights are final (thresholds...); returns a report."""
        return {}

    def summary(self, metrics: dict) -> str:
        """One line of the main figures, for the command line and the model card."""
        return f"{self.primary_metric} {metrics[self.primary_metric]:.4f}"

    def describe(self, prediction: dict) -> str:
        """One prediction as a line of text (``enctune predict`` without --json)."""
        return json.dumps(prediction)

    # ---- persistence ------------------------------------------------------------------------
    def config(self) -> dict:
        return {"task": self.name, "labels": self.labels, "label_type": self.label_type,
                "pair_mode": self.pair_mode, "task_options": self.options}

    @classmethod
    def from_config(cls, meta: dict) -> Task:
        return cls(meta.get("labels"), meta.get("label_type", "str"), pair_mode=meta.get("pair_mode", "cross"),
                   **(meta.get("task_options") or {}))


def as_numpy(targets) -> np.ndarray:
    """Targets as a NumPy array, whether they are a tensor or a list."""
    return targets.numpy() if hasattr(targets, "numpy") else np.asarray(targets)


def rows_message(ex: Examples, bad: list[int], what: str) -> str:
    first = ", ".join(ex.where(i).rsplit(", ", 1)[-1] for i in bad[:5])
    path = ex.where(bad[0]).rsplit(", ", 1)[0]
    return f"{path}: {len(bad)} row(s) {what} ({first}{', ...' if len(bad) > 5 else ''})"


def named_column(table: Table, wanted: str | None, names: tuple[str, ...]) -> str | None:
    """``wanted`` when the table has it, else the first of ``names`` (case-insensitive) it has, else None."""
    if wanted is not None:
        return wanted if wanted in table.columns else None
    lowered = {c.lower(): c for c in table.columns}
    return next((lowered[n] for n in names if n in lowered), None)
