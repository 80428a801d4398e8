"""Gradient clipping inside the fused AdamW step (switch ``fused_clip``).

``clip_grad_norm_`` multiplies every gradient by min(1, max_norm / (norm + 1e-6)) before the step:
a pass that rewrites every gradient (~2 ms of a ~160 ms CPU step of the default encoder). The fused
Adam/AdamW kernel divides each gradient by ``grad_scale`` as it reads it (the hook GradScaler uses):
setting grad_scale = max(1, (norm + 1e-6) / max_norm) gives the same update without the pass.
"""

from __future__ import annotations

import torch

from . import enabled


def clip_in_fused_step(optimizer: torch.optim.Optimizer, params: list[torch.Tensor], max_norm: float) -> None:
    """Clip the gradients of ``params`` to total norm ``max_norm`` inside the next step of ``optimizer`` (a
    fused Adam/AdamW)."""
    norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None], foreach=True)
    optimizer.grad_scale = torch.clamp((norm + 1e-6) / max_norm, min=1.0)


def gradient_clipper(optimizer: torch.optim.Optimizer, params: list[torch.Tensor], max_norm: float, plain: bool,
                     accelerate_clip=None):
    """A function that clips the gradients before each step: inside the fused step where it can, else torch's
    ``clip_grad_norm_`` (one foreach kernel), else (sharded set-ups, ``plain`` False) Accelerate's."""
    if plain and optimizer.defaults.get("fused") and enabled("fused_clip"):
        return lambda: clip_in_fused_step(optimizer, params, max_norm)
    if plain:
        return lambda: torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
    return lambda: accelerate_clip(params, max_norm)
