"""``full``: every encoder parameter and the head train together; the base of ``partial`` and ``lora``.

Batches are length-bucketed and padded per batch; the loop evaluates on validation twice
an epoch and keeps the best weights. Cost per token is about 6 N FLOPs (forward 2 N,
backward 4 N) for N non-embedding parameters, plus attention.

Layer-wise learning-rate decay (``--layer-lr-decay d``): the head and anything above the
last layer train at the base rate, layer i of L at d^(L - i + 1) times it, the embeddings
at d^(L + 1): lower layers hold general features that small data should move least.
"""

from __future__ import annotations

import re

from pydantic import Field

from .. import speed
from ..training.memory import Shape, check_fits
from .base import (
    START_SECONDS,
    CostFacts,
    Estimate,
    RunContext,
    Strategy,
    StrategyOptions,
    StrategyResult,
    all_but_word_embeddings,
    count_params,
)
from .registry import register

_LAYER = re.compile(r"\.(?:layer|layers|h|block|blocks)\.(\d+)\.")
_EMBEDDING = re.compile(r"embed|\.wte\.|\.wpe\.")


def non_embedding_params(encoder) -> int:
    emb = encoder.model.get_input_embeddings()
    n_emb = sum(p.numel() for p in emb.parameters()) if emb is not None else 0
    return sum(p.numel() for p in encoder.parameters()) - n_emb


def layer_depth(name: str, n_layers: int) -> int:
    """0 for embeddings, i + 1 for transformer block i, n_layers + 1 for everything above (final norm, head)."""
    m = _LAYER.search(name)
    if m:
        return int(m.group(1)) + 1
    if _EMBEDDING.search(name):
        return 0
    return n_layers + 1


def layer_lr_scales(model, n_layers: int, decay: float | None) -> dict[str, float] | None:
    if decay is None or decay == 1.0:
        return None
    return {name: decay ** (n_layers + 1 - layer_depth(name, n_layers))
            for name, p in model.named_parameters() if p.requires_grad}


def _activation_checkpointing(model, on: bool) -> None:
    """Turn activation (gradient) checkpointing on or off, by its name in this transformers version."""
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5
        if on:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.activation_checkpointing_disable()
    elif on:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_disable()


class FullOptions(StrategyOptions):
    layer_lr_decay: float | None = Field(None, gt=0, le=1, description="partial/full: learning rate x this per "
                                                                       "layer down (e.g. 0.8)")


@register
class FullStrategy(Strategy):
    name = "full"
    summary = "every encoder parameter (but the word embeddings) and the head"
    Options = FullOptions
    epochs = 3
    lr = 1e-4
    batch_size = 32
    step_floor = True
    ladder_rank = 60
    auto_rank = 30
    min_per_class = 16  # fewer examples in a class: 22M parameters move on noise, a frozen encoder overfits less

    @classmethod
    def estimate(cls, facts: CostFacts) -> Estimate:
        """epochs x tokens at the full fine-tuning rate, plus two evaluations an epoch on validation and one on
        test; AdamW holds gradient and two moments (12 bytes) per trained parameter."""
        trained = cls.trainable_params(facts) or facts.params * 0.75
        epochs = cls.epochs_for(facts)
        return Estimate(cls.name, epochs * facts.train_tokens / facts.rate() + facts.eval_seconds(2 * epochs)
                        + START_SECONDS, facts.weights_mb + trained * 12 / 2**20 + facts.activations_mb, int(trained))

    @classmethod
    def select_trainable(cls, cfg, network, n_layers):
        """Full: everything but (by default) the word embeddings."""
        all_but_word_embeddings(network, cfg.freeze_embeddings)

    def costs(self, ctx: RunContext, model, tokens: int) -> dict:
        trainable, total = count_params(model)
        return {"trainable_params": trainable, "total_params": total,
                "train_flops_estimate": 6 * non_embedding_params(ctx.encoder) * tokens}

    def run(self, ctx: RunContext) -> StrategyResult:
        import torch
        from torch.utils.data import DataLoader

        from ..distributed import gather_rows, rank_world  # lazy: torch (~2 s)
        from ..model import TaskModel, batched_logits  # lazy: torch (~2 s), like everything that trains
        from ..training.batching import LengthBucketSampler  # lazy: torch (~2 s)
        from ..training.loop import fit  # lazy: torch (~2 s)

        cfg, task = ctx.cfg, ctx.task
        epochs, lr, batch_size = self.hyper(cfg, task, len(ctx.splits.train))
        head, _ = ctx.build_head()
        self.wrap_encoder(ctx)
        enc = ctx.encoder
        model = TaskModel(enc, head, task.level)
        self.select_trainable(cfg, enc.model, enc.num_layers)
        for p in head.parameters():
            p.requires_grad_(True)
        trainable, total = count_params(model)
        mc = enc.model.config
        shape = Shape(total, trainable, enc.hidden_size, enc.num_layers, int(getattr(mc, "num_attention_heads", 1)))
        width = int(ctx.tokens["train"].lengths().max())
        check_fits(shape, -(-batch_size // rank_world()[1]), width, "cuda" if torch.cuda.is_available() else "cpu",
                   cfg.gradient_checkpointing, cfg.max_tokens_per_batch)
        if cfg.gradient_checkpointing:
            # recompute each layer's activations in the backward pass: less memory, about a third more compute
            _activation_checkpointing(enc.model, True)
        tokens, targets = ctx.tokens["train"], ctx.targets["train"]
        sampler = LengthBucketSampler(tokens.lengths(), batch_size, cfg.seed)
        loader = DataLoader(range(len(tokens)), batch_sampler=sampler,
                            collate_fn=lambda idx: {**enc.collate(tokens, idx),
                                                    "labels": task.collate_targets(targets, idx)})
        val_tokens = ctx.tokens["validation"]

        seen = []  # the validation outputs of every evaluation, in the loop's order

        def evaluate(m):  # each process scores its share of the rows; every process gets all outputs
            outputs = gather_rows(len(val_tokens), lambda idx: batched_logits(
                m, m.encoder, val_tokens.subset(idx), 256, ctx.precision))
            seen.append(outputs)
            score = ctx.score(outputs)
            return score, {task.primary_metric: score}

        loop_cfg = ctx.loop_config(epochs, lr, self.description, evals_per_epoch=2,
                                   lr_scales=layer_lr_scales(model, enc.num_layers, cfg.layer_lr_decay))
        result = fit(model, loader, task.loss, evaluate, loop_cfg, checkpoints=ctx.checkpoints)
        if cfg.gradient_checkpointing:
            _activation_checkpointing(enc.model, False)
        return StrategyResult(head=model.head, loop=result, encoder_trained=True,
                              costs=self.costs(ctx, model, result.tokens), outputs=kept_outputs(result, seen, ctx))

    description = "full fine-tuning"

    def wrap_encoder(self, ctx: RunContext) -> None:
        """Change the encoder's network before training (``lora`` adds adapters); nothing for full."""


def kept_outputs(loop, seen: list, ctx: RunContext) -> dict:
    """The validation outputs the loop already computed with the weights it kept, so that the run's final
    evaluation does not score validation again (~3 s of a 133 s SST-2 run on 2 cores): only when the loop
    evaluated in fp32, as the final evaluation does, and ``seen`` matches the history one to one (a resumed run
    holds evaluations from before the restart that ``seen`` lacks). ``ENCTUNE_DISABLE=reuse_validation`` turns
    it off."""
    if not (speed.enabled("reuse_validation") and ctx.precision == "fp32" and len(seen) == len(loop.history)):
        return {}
    kept = [i for i, h in enumerate(loop.history) if h["step"] == loop.kept_step]
    return {"validation": seen[kept[-1]]} if kept else {}
