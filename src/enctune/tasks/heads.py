"""The heads tasks build: the torch modules that turn pooled vectors (or token states) into outputs.

Imported by a task's ``build_head`` only (the task modules themselves import without torch).

- ``linear_head``: dropout then a linear layer over the pooled vector (B, H) -> (B, C), or over
  the combined pair of vectors when a pair is encoded apart (``PairFeatures``).
- ``CosineLinear``: logits from cosine similarity to class vectors, which can start from label
  descriptions' embeddings (``strategies.labels``).
- ``ClozeHead``: a checkpoint's masked-LM head read at the mask token (``zeroshot`` cloze mode).
- ``CosinePairHead``: the similarity of a pair of vectors through a shared projection (regression
  on text pairs).
- ``token_head``: dropout then a linear layer on every token's state, (B, T, H) -> (B, T, C).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError


class PairFeatures(nn.Module):
    """Texts encoded apart (``bi``): (B, 2H) = [u; v] -> (B, 4H) = [u; v; |u - v|; u * v]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, v = x.chunk(2, dim=-1)
        return torch.cat([u, v, (u - v).abs(), u * v], dim=-1)


class UnitNorm(nn.Module):
    """h / ||h|| (B, H) -> (B, H): the head reads directions only, as a sentence encoder trained with a cosine
    objective means its vectors to be read. A linear layer after it is logistic regression on unit vectors,
    where the vectors' lengths (which vary with the text, not the class) cannot sway the classes. Measured
    with logistic regression on the default encoder's vectors, 8 examples a class, 5 seeds
    (``python -m bench.head_l2``, BENCHMARKS.md): financial_phrasebank 0.751 on unit vectors against at best
    0.674 on raw ones, the other four data sets level or up to a point higher."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.normalize(h, dim=-1)


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
        cos = F.normalize(h, dim=-1) @ F.normalize(self.weight, dim=-1).T  # (B, C)
        return self.log_scale.exp() * cos + self.bias


def _tanh_gelu() -> nn.Module:
    return nn.GELU(approximate="tanh")


# the activations a checkpoint's MLM head may name (tasks.classify.CLOZE_ACTIVATIONS lists the same names)
ACTIVATIONS = {"gelu": nn.GELU, "gelu_new": _tanh_gelu, "gelu_pytorch_tanh": _tanh_gelu, "gelu_fast": _tanh_gelu,
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
        if activation not in ACTIVATIONS:
            raise UserError(f"cloze head: activation '{activation}' is not one of {', '.join(ACTIVATIONS)}.")
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.act = ACTIVATIONS[activation]()
        self.norm = nn.LayerNorm(hidden_size, eps=eps)
        self.decoder = nn.Linear(hidden_size, outputs)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(self.act(self.dense(h))))  # (B, C)


class CosinePairHead(nn.Module):
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


def linear_head(hidden_size: int, outputs: int, dropout: float, pair_mode: str, kind: str = "linear") -> nn.Module:
    """Dropout + linear (or cosine: ``CosineLinear``; or ``unit``: linear on the unit-length vector,
    ``UnitNorm``), over the pooled vector (or the combined pair of vectors when encoded apart)."""
    if kind == "cosine":
        if pair_mode == "bi":
            raise UserError("a head started from label descriptions scores one text against each label; it "
                            "does not take text pairs encoded apart (use --pair-mode cross or --init-head random).")
        return nn.Sequential(nn.Dropout(dropout), CosineLinear(hidden_size, outputs))
    if kind == "unit" and pair_mode != "bi":
        return nn.Sequential(nn.Dropout(dropout), UnitNorm(), nn.Linear(hidden_size, outputs))
    if pair_mode == "bi":
        return nn.Sequential(PairFeatures(), nn.Dropout(dropout), nn.Linear(4 * hidden_size, outputs))
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_size, outputs))


def token_head(hidden_size: int, outputs: int, dropout: float) -> nn.Module:
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_size, outputs))


class EmbeddingHead(nn.Module):
    """A retrieval model's embedding: the pooled vector turned by a fixed orthogonal ``rotation`` (H, H), in fp32
    ((B, H), or [u R; v R] (B, 2H) for a query and a document encoded apart).

    The rotation starts as the identity and is set before training to the principal directions of the training
    texts' vectors (``tasks.retrieve``), most variance first. Being orthogonal, it changes no cosine at the full
    width; it only orders the dimensions, so that a prefix (a Matryoshka cut) keeps the most. Measured on the
    squad_small retrieval split: the untrained encoder's first 128 dimensions keep 94.3% of its nDCG@10, the
    first 128 principal ones 97.6%."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.register_buffer("rotation", torch.eye(hidden_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        h = self.rotation.shape[0]
        if x.shape[-1] == h:
            return x @ self.rotation
        return torch.cat([part @ self.rotation for part in x.split(h, dim=-1)], dim=-1)


def ranking_loss(u: torch.Tensor, v: torch.Tensor, doc_ids: torch.Tensor, scale: float = 20.0,
                 dims: tuple[int, ...] = (), w: torch.Tensor | None = None,
                 neg_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Multiple-negatives ranking loss, averaged over the embedding's full width and each Matryoshka width.

    For queries u (B, H) and their positive documents v (B, H), at width d: S = scale * cos(u[:, :d], v[:, :d])
    (B, B), and the loss is the cross-entropy of row i against column i: every other document of the batch is a
    negative. A column whose document is row i's own (the same ``doc_ids``, a document two queries share) is not
    a negative: it is masked out. Cutting embeddings to d dimensions then keeps most of their quality. With hard
    negatives w (B, H) (their document indices ``neg_ids``), S is (B, 2B): every row's negative is a negative for
    every query, except where it is that query's own document.
    """
    target = torch.arange(len(u), device=u.device)
    same = (doc_ids[:, None] == doc_ids[None, :]) & ~torch.eye(len(u), dtype=torch.bool, device=u.device)
    if w is not None:
        same = torch.cat([same, doc_ids[:, None] == neg_ids[None, :]], dim=1)
    docs = v if w is None else torch.cat([v, w])
    total = u.new_zeros(())
    widths = [u.shape[1], *(d for d in dims if d < u.shape[1])]
    for d in widths:
        s = scale * (F.normalize(u[:, :d], dim=-1) @ F.normalize(docs[:, :d], dim=-1).T)
        total = total + F.cross_entropy(s.masked_fill(same, float("-inf")), target)
    return total / len(widths)
