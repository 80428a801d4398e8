"""``full``: every encoder parameter and the head train together.

Batches are length-bucketed and padded per batch; the loop evaluates on validation twice
an epoch and keeps the best weights. Cost per token is about 6 N FLOPs (forward 2 N,
backward 4 N) for N non-embedding parameters, plus attention.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from ..model import TaskModel, batched_logits
from ..training.batching import LengthBucketSampler
from ..training.distributed import gather_rows, rank_world
from ..training.loop import LoopConfig, fit
from ..training.memory import Shape, check_fits
from .base import RunContext, Strategy, StrategyResult, count_params, register


def non_embedding_params(encoder) -> int:
    emb = encoder.model.get_input_embeddings()
    n_emb = sum(p.numel() for p in emb.parameters()) if emb is not None else 0
    return sum(p.numel() for p in encoder.parameters()) - n_emb


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


@register
class FullStrategy(Strategy):
    name = "full"
    epochs = 3
    lr = 1e-4
    batch_size = 32

    def run(self, ctx: RunContext) -> StrategyResult:
        cfg, enc, task = ctx.cfg, ctx.encoder, ctx.task
        epochs, lr, batch_size = self.hyper(cfg, task)
        head = task.build_head(enc.hidden_size, cfg.dropout)
        model = TaskModel(enc, head, task.level)
        for p in model.parameters():
            p.requires_grad_(True)
        if cfg.freeze_embeddings:
            # The word-embedding matrix is half of a small encoder's parameters; rows of words absent from
            # the task data get no gradient anyway, and keeping it fixed saves its dense gradient and
            # optimizer state on every step.
            emb = enc.model.get_input_embeddings()
            if emb is not None:
                emb.weight.requires_grad_(False)
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

        def evaluate(m):  # each process scores its share of the rows; every process gets all outputs
            outputs = gather_rows(len(val_tokens), lambda idx: batched_logits(
                m, m.encoder, val_tokens.subset(idx), 256, ctx.precision, max_tokens=8192))
            score = ctx.score(outputs)
            return score, {task.primary_metric: score}

        loop_cfg = LoopConfig(epochs=epochs, lr=lr, weight_decay=cfg.weight_decay, warmup_ratio=cfg.warmup_ratio,
                              grad_accum=cfg.grad_accum, max_grad_norm=cfg.max_grad_norm, patience=cfg.patience,
                              eval_every=cfg.eval_every, evals_per_epoch=2,
                              precision=ctx.precision, seed=cfg.seed, max_tokens_per_batch=cfg.max_tokens_per_batch,
                              description="full fine-tuning")
        result = fit(model, loader, task.loss, evaluate, loop_cfg, checkpoints=ctx.checkpoints)
        if cfg.gradient_checkpointing:
            _activation_checkpointing(enc.model, False)
        trainable, total = count_params(model)
        n = non_embedding_params(enc)
        costs = {"trainable_params": trainable, "total_params": total,
                 "train_flops_estimate": 6 * n * result.tokens}
        return StrategyResult(head=model.head, loop=result, encoder_trained=True, costs=costs)
