"""What every task provides: its head, its loss, its metrics and its decoding.

A task is one module in this package registered under its name in ``TASKS``. The loop
and the strategies call only these methods, so a new task needs no edit elsewhere.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import nn


class Task:
    name: ClassVar[str]
    primary_metric: ClassVar[str]

    def __init__(self, labels: list[str], label_type: str = "str", class_weights: list[float] | None = None):
        self.labels = labels
        self.label_type = label_type
        self.class_weights = class_weights

    def build_head(self, hidden_size: int, dropout: float = 0.1) -> nn.Module:
        raise NotImplementedError

    def encode_labels(self, labels: list[str]) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def metrics(self, logits: np.ndarray, targets: np.ndarray) -> dict:
        raise NotImplementedError

    def decode(self, logits: np.ndarray) -> list[dict]:
        raise NotImplementedError

    def score(self, logits: np.ndarray, targets: np.ndarray) -> float:
        """The primary metric alone (higher is better): what early stopping watches, so it must be cheap."""
        return float(self.metrics(logits, targets)[self.primary_metric])

    def config(self) -> dict:
        return {"task": self.name, "labels": self.labels, "label_type": self.label_type}


TASKS: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    TASKS[cls.name] = cls
    return cls
