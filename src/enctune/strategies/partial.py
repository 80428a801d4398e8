"""``partial``: only the top k encoder layers (and what sits above them, and the head) train.

The lower layers stay frozen, so the backward pass stops at layer L - k: training costs the
forward pass plus the backward pass of k layers, and the optimizer holds state for those
layers only. ``--unfreeze-layers k`` (default: a third of the layers, at least one);
``--layer-lr-decay`` works here as in ``full``.
"""

from __future__ import annotations

from pydantic import Field

from ..errors import UserError
from .base import START_SECONDS, CostFacts, Estimate, layers_trained
from .full import FullOptions, FullStrategy, layer_depth
from .registry import register


class PartialOptions(FullOptions):
    unfreeze_layers: int | None = Field(None, ge=1, le=1000, description="partial: top layers that train "
                                                                          "[a third of them]")


@register
class PartialStrategy(FullStrategy):
    name = "partial"
    summary = "the top k encoder layers and the head (--unfreeze-layers k, default a third)"
    Options = PartialOptions
    lr = 2e-4
    description = "partial fine-tuning"
    ladder_rank = 50
    auto_rank = 20

    @classmethod
    def estimate(cls, facts: CostFacts) -> Estimate:
        """The forward pass plus the backward pass of k of L layers; optimizer state for those k."""
        layers = max(facts.layers, 1)
        k = layers_trained(facts.layers, getattr(facts.options, "unfreeze_layers", None))
        trained = cls.trainable_params(facts) or facts.params / (layers + 2) * k
        epochs = cls.epochs_for(facts)
        return Estimate(cls.name, epochs * facts.train_tokens * (1 + 2 * k / layers) / (3 * facts.rate())
                        + facts.eval_seconds(2 * epochs) + START_SECONDS,
                        facts.weights_mb + trained * 12 / 2**20 + facts.activations_mb * k / layers, int(trained),
                        f"top {k} of {layers} layers")

    @classmethod
    def select_trainable(cls, cfg, network, n_layers):
        k = layers_trained(n_layers, cfg.unfreeze_layers)
        if n_layers < 1:
            raise UserError("--strategy partial: this encoder has no layers to unfreeze; use full or probe.")
        if k > n_layers:
            raise UserError(f"--unfreeze-layers {k}: this encoder has {n_layers} layers.")
        lowest = n_layers - k + 1  # depth of the lowest block that trains
        for name, p in network.named_parameters():
            # the BERT pooler sits above the last layer but is never used: it stays frozen
            p.requires_grad_(layer_depth("encoder.model." + name, n_layers) >= lowest and "pooler" not in name)
