"""The trainable networks: encoder + head, or a head alone over cached features."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .encoders import Encoder, Tokenized
from .training.batching import token_budget_batches
from .training.precision import autocast


class TaskModel(nn.Module):
    """Encoder followed by the task head: token ids (B, T) -> logits (B, C)."""

    def __init__(self, encoder: Encoder, head: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        return self.head(self.encoder(input_ids, attention_mask, token_type_ids))


class HeadModel(nn.Module):
    """The head alone, over pooled features (B, H) -> logits (B, C)."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)


@torch.inference_mode()
def batched_logits(model: nn.Module, encoder: Encoder, tokens: Tokenized, batch_size: int = 64,
                   precision: str = "fp32", progress=None, max_tokens: int | None = None) -> np.ndarray:
    """``model(**batch)`` logits for every example, in input order.

    Batches are sorted by length; with ``max_tokens`` they are sized by a padded-token budget
    (at most ``batch_size`` rows), else they hold ``batch_size`` rows each.
    """
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    lengths = tokens.lengths()
    if max_tokens:
        batches = token_budget_batches(lengths, max_tokens, batch_size)
    else:
        order = np.argsort(-lengths, kind="stable")
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    out: np.ndarray | None = None
    for idx in batches:
        batch = {k: v.to(device) for k, v in encoder.collate(tokens, idx).items()}
        with autocast(device.type, precision):
            logits = model(**batch).float().cpu().numpy()
        if out is None:
            out = np.zeros((len(tokens), logits.shape[-1]), dtype=np.float32)
        out[idx] = logits
        if progress is not None:
            progress(len(idx))
    model.train(was)
    return out


@torch.inference_mode()
def head_logits(head: nn.Module, features: np.ndarray) -> np.ndarray:
    was = head.training
    head.eval()
    device = next(head.parameters()).device
    out = head(torch.from_numpy(features).to(device)).float().cpu().numpy()
    head.train(was)
    return out
