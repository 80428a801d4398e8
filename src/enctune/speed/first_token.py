"""A classifier that reads only the first token need not compute the last layer for the others.

BERT-style ``...ForSequenceClassification`` models (BERT, MiniLM, RoBERTa, ELECTRA, ...) classify
from the last layer's state of the first token alone. In that layer every other position still
supplies keys and values to the first token's attention, but its query, the attention output
projection and the feed-forward block (10 of the layer's 12 H^2 multiply-adds per token) serve
only outputs that nobody reads. ``FirstTokenLayer`` wraps such a last layer: while switched on
(``first_token_only``) it computes the query and everything after it for the first position
only and returns a (B, 1, H) state; otherwise it is the layer itself. On a 6-layer encoder that
is a seventh of the pass. The result is the same computation for the first token, up to float
rounding (the matrix products change shape).
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.nn import functional as F

from . import enabled

FIRST_TOKEN_MODEL_TYPES = ("bert", "roberta", "xlm-roberta", "camembert", "electra")


class FirstTokenLayer(nn.Module):
    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer
        self.active = False

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, *args, **kwargs):
        if not self.active or self.training:
            return self.layer(hidden_states, attention_mask, *args, **kwargs)
        attention = self.layer.attention
        sa = attention.self
        b, t, _ = hidden_states.shape
        d = sa.attention_head_size
        first = hidden_states[:, :1]
        q = sa.query(first).view(b, 1, -1, d).transpose(1, 2)
        k = sa.key(hidden_states).view(b, t, -1, d).transpose(1, 2)
        v = sa.value(hidden_states).view(b, t, -1, d).transpose(1, 2)
        mask = attention_mask
        if mask is not None:
            if mask.dim() == 2:  # (B, T), 1 = a real token
                mask = mask[:, None, None, :].bool()
            elif mask.shape[-2] > 1:  # (B, 1 or heads, T, T): the first query's row
                mask = mask[..., :1, :]
            if mask.dtype != torch.bool:
                mask = mask.to(q.dtype)  # an additive mask (0 / large negative)
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=sa.scaling)
        ctx = ctx.transpose(1, 2).reshape(b, 1, -1)
        return self.layer.feed_forward_chunk(attention.output(ctx, first))


def wrap_last_layer(model: nn.Module) -> FirstTokenLayer | None:
    """Put a ``FirstTokenLayer`` around the last encoder layer of a BERT-style sequence classifier; the
    wrapper, or None when the model is not one this applies to or the ``first_token`` switch is off (it is
    then left as it is)."""
    if not enabled("first_token"):
        return None
    cfg = getattr(model, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) not in FIRST_TOKEN_MODEL_TYPES:
        return None
    if getattr(cfg, "is_decoder", False) or getattr(cfg, "add_cross_attention", False):
        return None
    if getattr(cfg, "position_embedding_type", "absolute") not in (None, "absolute"):
        return None  # relative position scores live inside the attention module
    layers = getattr(getattr(getattr(model, "base_model", None), "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList) or not len(layers):
        return None
    last = layers[-1]
    sa = getattr(getattr(last, "attention", None), "self", None)
    needed = (all(hasattr(sa, n) for n in ("query", "key", "value", "attention_head_size", "scaling"))
              and hasattr(last.attention, "output") and hasattr(last, "feed_forward_chunk"))
    if not needed:
        return None
    wrapper = FirstTokenLayer(last)
    wrapper.train(last.training)
    layers[-1] = wrapper
    return wrapper


@contextlib.contextmanager
def first_token_only(wrapper: FirstTokenLayer | None):
    """Switch the wrapper on for the calls inside (a no-op for None)."""
    if wrapper is None:
        yield
        return
    wrapper.active = True
    try:
        yield
    finally:
        wrapper.active = False
