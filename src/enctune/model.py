"""The trainable networks: encoder + head, or a head alone over cached features."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .encoders import Encoder, Tokenized
from .encoders.tokens import inference_tokens, token_budget_batches
from .precision import autocast


class TaskModel(nn.Module):
    """Encoder followed by the task head.

    ``sequence`` level: token ids (B, T) -> pooled (B, H) -> logits (B, C); a text pair
    encoded apart (the ``*_b`` inputs) gives [u; v] (B, 2H) to the head, and a third text (``*_c``, a
    retrieval row's hard negative) [u; v; w] (B, 3H).
    ``token`` level: token ids (B, T) -> hidden states (B, T, H) -> logits (B, T, C).
    """

    def __init__(self, encoder: Encoder, head: nn.Module, level: str = "sequence"):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.level = level

    def forward(self, input_ids, attention_mask, token_type_ids=None, input_ids_b=None, attention_mask_b=None,
                token_type_ids_b=None, input_ids_c=None, attention_mask_c=None, token_type_ids_c=None) -> torch.Tensor:
        if self.level == "token":
            (h,) = self.encoder.hidden(input_ids, attention_mask, token_type_ids)
            return self.head(h)
        u = self.encoder(input_ids, attention_mask, token_type_ids)
        for ids, mask, tt in ((input_ids_b, attention_mask_b, token_type_ids_b),
                              (input_ids_c, attention_mask_c, token_type_ids_c)):
            if ids is not None:
                u = torch.cat([u, self.encoder(ids, mask, tt)], dim=-1)
        return self.head(u)


class PairCosine(nn.Module):
    """A head for pairs of texts encoded apart: TaskModel hands it [u; v] (B, 2H); it returns cos(u, v) (B,),
    computed in fp32 (bf16's 8 bits of mantissa would round away the small differences of cosine that
    ``fewshot``'s pair loss is made of)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, v = x.float().chunk(2, dim=-1)
        return torch.nn.functional.cosine_similarity(u, v, dim=-1)


def pair_loss(cos: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared distance of each pair's cosine from its target (1 same label, 0 different)."""
    return torch.nn.functional.mse_loss(cos, target)


def batch_pair_loss(u: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``pair_loss`` over every pair of a batch: u (B, H) pooled vectors, labels (B,) class ids. The B (B-1) / 2
    pairs i < j put cos(u_i, u_j) at 1 (same label) or 0 (different); positives and negatives weigh half each
    (a batch of many classes holds far more negatives). A batch without a positive pair is all negatives; a
    batch of one text (a pass's last row, or a process's share) has no pair and a loss of 0."""
    z = torch.nn.functional.normalize(u.float(), dim=-1)
    cos = z @ z.T
    upper = torch.ones_like(cos, dtype=torch.bool).triu(1)
    same = labels[:, None] == labels[None, :]
    parts = [sq.mean() for sq in ((cos[same & upper] - 1) ** 2, cos[~same & upper] ** 2) if sq.numel()]
    return sum(parts) / len(parts) if parts else cos.sum() * 0.0


class HeadModel(nn.Module):
    """The head alone, over pooled features (B, H) -> logits (B, C)."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)


@torch.inference_mode()
def batched_logits(model: nn.Module, encoder: Encoder, tokens: Tokenized, batch_size: int = 64,
                   precision: str = "fp32", progress=None, max_tokens: int | None = -1):
    """``model(**batch)`` logits for every example, in input order.

    Batches are sorted by length and sized by a padded-token budget of ``max_tokens`` (at most
    ``batch_size`` rows; the default -1 takes the device's ``inference_tokens``); with
    ``max_tokens=None`` they hold ``batch_size`` rows each. A sequence-level
    model gives an array (N, C); a token-level one a list of (T_i, C) arrays, one per example,
    cut to its own tokens (token-level models are fed right-padded batches).
    """
    token_level = getattr(model, "level", "sequence") == "token"
    was = model.training
    if was:  # switching walks every module (~6 ms a call for MiniLM): a served model is in eval mode already
        model.eval()
    device = next(model.parameters()).device
    lengths = tokens.lengths()
    if max_tokens == -1:
        max_tokens = inference_tokens(device.type)
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
        if token_level:
            if out is None:
                out = [None] * len(tokens)
            for r, i in enumerate(idx):
                out[i] = logits[r, :len(tokens.input_ids[i])]
            if progress is not None:
                progress(len(idx))
            continue
        if out is None:
            out = np.zeros((len(tokens), logits.shape[-1]), dtype=np.float32)
        out[idx] = logits
        if progress is not None:
            progress(len(idx))
    if was:
        model.train(True)
    return out


@torch.inference_mode()
def head_logits(head: nn.Module, features: np.ndarray) -> np.ndarray:
    was = head.training
    head.eval()
    device = next(head.parameters()).device
    out = head(torch.from_numpy(features).to(device)).float().cpu().numpy()
    head.train(was)
    return out
