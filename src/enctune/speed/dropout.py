"""Dropout that costs less than the matrix products it sits between, on a CPU.

Profiling a training step of a small encoder on a 2-core CPU in bf16 showed ``bernoulli_``
(the mask of every dropout: embeddings, attention probabilities, the outputs of attention
and feed-forward blocks) taking a fifth of the step, more than all linear layers' forward
passes: PyTorch draws one double-precision uniform per element. Here the mask comes from
15 random bits per element, sliced out of 64-bit random integers (one ``random_`` call
fills four elements' bits), and compared with a threshold: the same Bernoulli(1 - p) keep
mask up to the 1/32768 rounding of p, at about a sixth of the cost.

``installed(model, device_type)`` swaps it in for the span of a training run (switch
``fast_dropout``), on the CPU only (CUDA's dropout is already a fused kernel): every ``nn.Dropout`` module becomes a
``FastDropout`` of the same rate, and a transformers model whose attention runs through
``sdpa`` gets an attention function that applies this dropout to the attention
probabilities (PyTorch's CPU attention with dropout takes its unfused path with
``bernoulli_`` anyway). Everything is put back on exit, so a saved model and its config
never name anything of enctune's. The random bits come from torch's default generator: a
seeded run is repeatable.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from functools import cache

import torch
from torch import nn

from . import enabled

_BITS = 15
_LEVELS = 1 << _BITS  # random values per element: 0 .. 32767
ATTENTION_NAME = "enctune_sdpa"


def keep_mask(shape: torch.Size, p: float, dtype: torch.dtype, device) -> tuple[torch.Tensor, float]:
    """A 0/1 tensor of ``shape`` (1 with probability 1 - p) in ``dtype``, and the scale 1 / (1 - p') for the
    p' = round(p * 32768) / 32768 actually used."""
    n = math.prod(shape)
    drop = round(p * _LEVELS)
    # int64 random_ fills [0, 2^63): each of its four 16-bit lanes has 15 uniform low bits
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_().view(torch.int16)[:n]
    keep = bits.bitwise_and_(_LEVELS - 1).ge_(drop).view(shape).to(dtype)
    return keep, _LEVELS / (_LEVELS - drop)


class _Dropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        keep, scale = keep_mask(x.shape, p, x.dtype, x.device)
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return x.mul(keep).mul_(scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return grad.mul(keep).mul_(ctx.scale), None


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    if not training or p <= 0.0:
        return x
    if p >= 1.0:
        return torch.zeros_like(x)
    return _Dropout.apply(x, p)


class FastDropout(nn.Module):
    """``nn.Dropout`` with the cheaper mask; identity in eval mode."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


# keyword arguments that change what attention computes; with any of them set, the stock function runs
_UNSUPPORTED = ("position_bias", "softcap", "sliding_window", "s_aux", "output_attentions")


@cache
def _sdpa():
    """transformers' sdpa attention and its key/value repeat, imported once (attention runs per layer per step)."""
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    return repeat_kv, sdpa_attention_forward


def attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
              attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
              is_causal: bool | None = None, **kwargs) -> tuple[torch.Tensor, None]:
    """transformers' ``sdpa`` attention (same arguments, same (B, L, heads, D) output), with this module's
    dropout on the attention probabilities while training; without dropout it is ``sdpa`` itself."""
    repeat_kv, sdpa_attention_forward = _sdpa()
    if not dropout or not module.training or any(kwargs.get(k) for k in _UNSUPPORTED):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    groups = getattr(module, "num_key_value_groups", 1)
    if groups > 1:
        key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    q_len, k_len = query.shape[2], key.shape[2]
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(-2, -1)).mul_(scale)
    low = torch.finfo(scores.dtype).min
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, low)
        else:
            scores = scores + attention_mask
    elif causal and q_len > 1:
        above = torch.ones(q_len, k_len, dtype=torch.bool, device=scores.device).triu_(k_len - q_len + 1)
        scores = scores.masked_fill(above, low)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    out = torch.matmul(_Dropout.apply(probs, dropout), value)
    return out.transpose(1, 2).contiguous(), None


def _register() -> bool:
    try:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
    except ImportError:
        return False
    AttentionInterface.register(ATTENTION_NAME, attention)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)
    return True


@contextmanager
def installed(model: nn.Module, device_type: str):
    """Within the block, ``model``'s dropout uses the cheaper mask (CPU only; elsewhere nothing changes)."""
    if device_type != "cpu" or not enabled("fast_dropout"):
        yield
        return
    swapped = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout and child.p > 0:
                fast = FastDropout(child.p)
                fast.train(child.training)
                setattr(parent, name, fast)
                swapped.append((parent, name, child))
    configs = []
    for m in model.modules():
        cfg = getattr(m, "config", None)
        if cfg is not None and getattr(cfg, "_attn_implementation", None) == "sdpa" and \
                all(cfg is not c for c in configs):
            configs.append(cfg)
    if configs and _register():
        for cfg in configs:
            cfg._attn_implementation = ATTENTION_NAME
    else:
        configs = []
    try:
        yield
    finally:
        for cfg in configs:
            cfg._attn_implementation = "sdpa"
        for parent, name, child in swapped:
            child.train(getattr(parent, name).training)
            setattr(parent, name, child)
