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
from ..tasks import Task
from ..tasks.base import Prepared
from ..training.checkpoint import Checkpointer
from ..training.loop import LoopResult


@dataclass
class RunContext:
    cfg: TrainConfig
    encoder: Encoder
    task: Task
    splits: Splits
    prepared: dict[str, Prepared]  # "train", "validation", optionally "test": model inputs and targets
    precision: str
    checkpoints: Checkpointer | None = None  # --checkpoint-every / --resume

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


class Strategy:
    name: ClassVar[str]
    epochs: ClassVar[int]
    lr: ClassVar[float]
    batch_size: ClassVar[int]

    def run(self, ctx: RunContext) -> StrategyResult:
        raise NotImplementedError

    def hyper(self, cfg: TrainConfig, task: Task | None = None) -> tuple[int, float, int]:
        """Epochs, learning rate and batch size: the user's when given, else the task's for this
        strategy, else this strategy's."""
        d = task.defaults.get(self.name, {}) if task is not None else {}
        return (cfg.epochs or d.get("epochs", self.epochs), cfg.lr or d.get("lr", self.lr),
                cfg.batch_size or d.get("batch_size", self.batch_size))


STRATEGIES: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    STRATEGIES[cls.name] = cls
    return cls


def count_params(module: nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return trainable, total
