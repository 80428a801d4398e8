"""Pooling: how a sequence of token vectors becomes one vector.

Every function takes hidden states ``h`` of shape (B, T, H) and the attention mask ``m``
of shape (B, T) (1 for real tokens) and returns (B, H).

- ``cls``:  h[:, 0], the first token (BERT-style checkpoints trained a classifier on it).
- ``mean``: sum_t m_t h_t / sum_t m_t, the average over real tokens.
- ``max``:  max over real tokens, per dimension.
- ``last``: the last real token. Under causal attention it is the only position that has
  seen the whole text. Its index is the position of the last 1 in the mask, which is right
  for right padding (len - 1) and left padding (T - 1) alike.
- ``mask``: the hidden state at the tokenizer's mask token (``[MASK]``), for cloze prompts
  (``strategies.zeroshot``): the masked-LM head was trained to predict the missing word from
  exactly that vector. It needs the token ids, which the other poolings do not, so the
  ``Encoder`` hands it, in place of the attention mask, ``m_t = 1`` where token t is the mask
  token (``mask_positions``). The first marked position is taken; a row without one falls
  back to its first token (the ``Encoder`` keeps the template's mask from being cut away).
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def pool_cls(h: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return h[:, 0]


def pool_mean(h: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    w = m.unsqueeze(-1).to(h.dtype)  # (B, T, 1)
    return (h * w).sum(1) / w.sum(1).clamp(min=1e-9)


def pool_max(h: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return h.masked_fill(~m.bool().unsqueeze(-1), torch.finfo(h.dtype).min).max(1).values


def pool_last(h: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    positions = torch.arange(m.shape[1], device=m.device).expand_as(m)  # (B, T)
    last = (positions * m.long()).argmax(1)  # (B,) index of the last real token
    return h[torch.arange(h.shape[0], device=h.device), last]


def pool_mask(h: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``m`` (B, T): 1 at mask-token positions (see ``mask_positions``), not the attention mask."""
    first = m.long().argmax(1)  # (B,) index of the first mask token (0 when there is none)
    return h[torch.arange(h.shape[0], device=h.device), first]


def mask_positions(input_ids: torch.Tensor, attention_mask: torch.Tensor, mask_token_id: int) -> torch.Tensor:
    """(B, T) 1 where a real token is the mask token: what ``pool_mask`` reads."""
    return ((input_ids == mask_token_id) & attention_mask.bool()).long()


NEEDS_TOKEN_IDS = frozenset({"mask"})  # poolings that read token ids: the Encoder passes mask_positions

POOLINGS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cls": pool_cls,
    "mean": pool_mean,
    "max": pool_max,
    "last": pool_last,
    "mask": pool_mask,
}
