"""``partial``: only the top k encoder layers (and what sits above them, and the head) train.

The lower layers stay frozen, so the backward pass stops at layer L - k: training costs the
forward pass plus the backward pass of k layers, and the optimizer holds state for those
layers only. ``--unfreeze-layers k`` (default: a third of the layers, at least one);
``--layer-lr-decay`` works here as in ``full``.
"""

from __future__ import annotations

from ..errors import UserError
from ..model import TaskModel
from .base import RunContext, register
from .full import FullStrategy, layer_depth


def default_unfrozen(n_layers: int) -> int:
    return max(1, -(-n_layers // 3))


@register
class PartialStrategy(FullStrategy):
    name = "partial"
    lr = 2e-4
    description = "partial fine-tuning"

    def select_trainable(self, ctx: RunContext, model: TaskModel) -> None:
        n = ctx.encoder.num_layers
        k = ctx.cfg.unfreeze_layers or default_unfrozen(n)
        if n < 1:
            raise UserError("--strategy partial: this encoder has no layers to unfreeze; use full or probe.")
        if k > n:
            raise UserError(f"--unfreeze-layers {k}: this encoder has {n} layers.")
        lowest = n - k + 1  # depth of the lowest block that trains
        for name, p in model.encoder.named_parameters():
            # the BERT pooler sits above the last layer but is never used: it stays frozen
            p.requires_grad_(layer_depth("encoder." + name, n) >= lowest and "pooler" not in name)
