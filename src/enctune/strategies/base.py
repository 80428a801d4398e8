"""What a strategy is handed and what it hands back.

A strategy decides which parameters move (all, none, a head over cached features) and
hands the one training loop a module to train. It returns the trained head, whether the
encoder changed, the loop's record, and any features it cached (so evaluation can reuse
them instead of running the encoder again).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from torch import nn

from ..config import TrainConfig
from ..data import Splits
from ..encoders import Encoder, Tokenized
from ..errors import UserError
from ..tasks import Task
from ..tasks.base import Prepared
from ..training.checkpoint import Checkpointer
from ..training.loop import LoopConfig, LoopResult

SMALL_VALIDATION = 50  # rows: below this a validation split carved from train does not rank checkpoints
MIN_STEPS = 32  # optimizer steps a default schedule gives a small training set (at most MAX_FLOOR_EPOCHS)
MAX_FLOOR_EPOCHS = 20


@dataclass
class RunContext:
    cfg: TrainConfig
    encoder: Encoder
    task: Task
    splits: Splits
    prepared: dict[str, Prepared]  # "train", "validation", optionally "test": model inputs and targets
    precision: str
    checkpoints: Checkpointer | None = None  # --checkpoint-every / --resume
    deadline: float | None = None  # time.monotonic() when the --budget ladder's time is up

    def keep_best(self) -> bool:
        """Rank evaluations (and stop early) only on a validation split big enough to rank with: a split
        carved from a few dozen training rows moves by whole examples and would end training at noise."""
        if self.cfg.keep != "auto":
            return self.cfg.keep == "best"
        return not (self.splits.validation_carved and len(self.splits.validation) < SMALL_VALIDATION)

    def loop_config(self, epochs: int, lr: float, description: str, **overrides) -> LoopConfig:
        """The loop settings every trainable strategy shares, from the run's config."""
        cfg, keep = self.cfg, self.keep_best()
        settings = dict(epochs=epochs, lr=lr, weight_decay=cfg.weight_decay, warmup_ratio=cfg.warmup_ratio,
                        grad_accum=cfg.grad_accum, max_grad_norm=cfg.max_grad_norm, patience=cfg.patience,
                        eval_every=cfg.eval_every, precision=self.precision, seed=cfg.seed,
                        max_tokens_per_batch=cfg.max_tokens_per_batch, description=description,
                        deadline=self.deadline, keep_best=keep, early_stopping=keep)
        settings.update(overrides)
        return LoopConfig(**settings)

    def build_head(self):
        """The task's head, started from the label descriptions when ``--init-head`` asks for it (or, with
        ``auto``, when ``--labels`` gives descriptions); returns (head, label embeddings or None)."""
        cfg, task = self.cfg, self.task
        want = cfg.init_head == "labels" or (cfg.init_head == "auto" and cfg.labels is not None)
        if want and task.name != "classify":
            if cfg.init_head == "labels":
                raise UserError(f"--init-head labels: only for classify, not the '{task.name}' task.")
            want = False
        if not want:
            task.options.pop("head", None)
            return task.build_head(self.encoder.hidden_size, cfg.dropout), None
        from .labels import init_head_from_labels, label_embeddings

        task.options["head"] = "cosine"
        head = task.build_head(self.encoder.hidden_size, cfg.dropout)
        emb = label_embeddings(self.encoder, task, cfg.labels, cfg.template, self.precision)
        init_head_from_labels(head, emb)
        return head, emb

    @property
    def tokens(self) -> dict[str, Tokenized]:
        return {k: p.tokens for k, p in self.prepared.items()}

    @property
    def targets(self) -> dict:
        return {k: p.targets for k, p in self.prepared.items()}

    def examples(self, split: str):
        return {"train": self.splits.train, "validation": self.splits.validation, "test": self.splits.test}[split]

    def score(self, outputs, split: str = "validation") -> float:
        return self.task.score_outputs(outputs, self.prepared[split], self.examples(split))


@dataclass
class StrategyResult:
    head: nn.Module
    loop: LoopResult
    encoder_trained: bool
    features: dict[str, np.ndarray] = field(default_factory=dict)  # split -> pooled features
    costs: dict = field(default_factory=dict)
    encoder: Encoder | None = None  # the encoder the head sits on, when not the run's (a ladder rung's copy)


def split_outputs(result: StrategyResult, ctx: RunContext, split: str):
    """Model outputs on one split: from cached features when the encoder stayed frozen, else a forward
    pass (each process scores its share of the rows)."""
    from ..model import TaskModel, batched_logits, head_logits
    from ..training import distributed

    if split in result.features:
        return head_logits(result.head, result.features[split])
    encoder = result.encoder or ctx.encoder
    model = TaskModel(encoder, result.head, ctx.task.level)
    tokens = ctx.prepared[split].tokens
    return distributed.gather_rows(len(tokens), lambda idx: batched_logits(
        model, encoder, tokens.subset(idx), 256, "fp32"))


class Strategy:
    name: ClassVar[str]
    epochs: ClassVar[int]
    lr: ClassVar[float]
    batch_size: ClassVar[int]

    def run(self, ctx: RunContext) -> StrategyResult:
        raise NotImplementedError

    step_floor: ClassVar[bool] = False  # default epochs raised so a small train set gets MIN_STEPS steps

    def hyper(self, cfg: TrainConfig, task: Task | None = None, n_train: int | None = None) -> tuple[int, float, int]:
        """Epochs, learning rate and batch size: the user's when given, else the task's for this
        strategy, else this strategy's. Without ``--epochs``, a strategy with a step floor trains a small
        set for at least MIN_STEPS optimizer steps (3 epochs of 64 examples would be 6 steps)."""
        d = task.defaults.get(self.name, {}) if task is not None else {}
        epochs, lr = cfg.epochs or d.get("epochs", self.epochs), cfg.lr or d.get("lr", self.lr)
        batch_size = cfg.batch_size or d.get("batch_size", self.batch_size)
        if self.step_floor and not cfg.epochs and n_train:
            steps_per_epoch = -(-n_train // (batch_size * cfg.grad_accum))
            epochs = max(epochs, min(MAX_FLOOR_EPOCHS, -(-MIN_STEPS // steps_per_epoch)))
        return epochs, lr, batch_size


STRATEGIES: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    STRATEGIES[cls.name] = cls
    return cls


def require_single_text_classify(task: Task, strategy: str, what: str) -> None:
    """UserError unless ``task`` classifies one input per example (zeroshot and fewshot compare each
    example's single pooled vector with labels or with other examples)."""
    if task.name != "classify":
        raise UserError(f"--strategy {strategy} {what}: only for the classify task, not '{task.name}'. "
                        "Use --strategy probe or full.")
    if task.pair_mode == "bi":
        raise UserError(f"--strategy {strategy} takes one input per example; text pairs encoded apart (--pair-mode "
                        "bi) give two. Use --pair-mode cross, or --strategy probe or full.")


def count_params(module: nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return trainable, total
