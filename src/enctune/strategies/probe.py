"""``probe``: the encoder stays frozen; a head trains on cached pooled features.

The encoder runs once over every split (length-sorted batches, inference mode) and its
pooled outputs are cached on disk (see ``encoders.cache``); a second run on the same texts
with the same encoder, pooling, layer and max length reads them back. The head then trains
for many epochs in seconds on the features; encoder cost is 2 N FLOPs per token, once.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from .. import progress
from ..data import Examples
from ..encoders import Encoder, Tokenized
from ..encoders.cache import cached_features
from ..errors import UserError
from ..model import HeadModel, head_logits
from ..training.batching import ShuffledBatches
from ..training.loop import LoopResult, fit
from .base import RunContext, Strategy, StrategyResult, count_params, register
from .full import non_embedding_params

PRIOR_STRENGTH = 256.0  # examples' worth of belief in a head started from label descriptions


def prior_loss(loss_fn, head: torch.nn.Module, n_train: int):
    """The task loss plus a Gaussian prior that pulls a label-initialised head back toward its start:

        loss + (PRIOR_STRENGTH / n) * ||theta - theta_0||^2 / ||theta_0||^2

    With a handful of examples the descriptions carry most of the evidence, so the head may move only
    as far as the data insist; with thousands the prior fades (strength / n). Decaying toward zero
    instead would erase what the descriptions said.
    """
    start = [p.detach().clone() for p in head.parameters()]
    norm2 = sum(float((s ** 2).sum()) for s in start) or 1.0
    strength = PRIOR_STRENGTH / max(n_train, 1)

    def loss(logits, targets):
        dist2 = sum(((p - s) ** 2).sum() for p, s in zip(head.parameters(), start, strict=True))
        return loss_fn(logits, targets) + strength * dist2 / norm2

    return loss


def pooled_features(enc: Encoder, examples: dict[str, Examples | None], tokens: dict[str, Tokenized],
                    precision: str) -> tuple[dict[str, np.ndarray], int, int]:
    """The frozen encoder's pooled vector (at its layer and pooling) for every split that has examples:
    (split -> (N, H) or (N, 2H) for pairs encoded apart, cache hits, tokens encoded). Read from the
    on-disk cache when there, else computed and stored; an encoder with a ``template`` keys the cache
    by the wrapped texts, which are what it encodes."""
    features, hits, tokens_encoded = {}, 0, 0
    tpl = enc.template
    for split, ex in examples.items():
        if ex is None:
            continue
        tok = tokens[split]
        first = [tpl.replace("{}", t) for t in ex.texts] if tpl is not None else ex.texts
        # a pair encoded apart is two texts, each with its own vector: [u; v]
        parts = [(first, None, tok.alone()), (ex.pairs, None, tok.second)] if tok.second is not None \
            else [(first, ex.pairs, tok)]
        vectors = []
        with progress.bar(f"encode {split}", total=sum(len(t) for _, _, t in parts)) as pbar:
            for texts, pairs, t in parts:
                feats, hit = cached_features(enc, texts, pairs, t, [enc.layer], [enc.pooling],
                                             precision=precision, progress=pbar)
                vectors.append(feats[(enc.layer, enc.pooling)])
                hits += hit
                if not hit:
                    tokens_encoded += int(np.sum([len(x) for x in t.input_ids]))
        features[split] = np.concatenate(vectors, axis=1) if len(vectors) > 1 else vectors[0]
    progress.info(f"features: {hits} cache hit(s) for {len(features)} split(s)")
    return features, hits, tokens_encoded


def train_head(ctx: RunContext, features: dict[str, np.ndarray], epochs: int, lr: float, batch_size: int,
               checkpoints=None) -> tuple[torch.nn.Module, LoopResult]:
    """The task's head trained on fixed pooled features (B, H) through the loop: whole batches sliced out
    of the feature matrix, scored on validation features, started from the label descriptions (and
    held near them by ``prior_loss``) when the run has them."""
    cfg, task = ctx.cfg, ctx.task
    head, label_emb = ctx.build_head()
    loss_fn = task.loss if label_emb is None else prior_loss(task.loss, head, len(features["train"]))
    x, y = torch.from_numpy(features["train"]), ctx.targets["train"]
    loader = DataLoader(range(len(x)), batch_sampler=ShuffledBatches(len(x), batch_size, cfg.seed),
                        collate_fn=lambda idx: {"features": x[torch.as_tensor(idx)],
                                                "labels": task.collate_targets(y, idx)})
    val_x = features["validation"]

    def evaluate(m):
        score = ctx.score(head_logits(m.head, val_x))
        return score, {task.primary_metric: score}

    # no deadline: a head on fixed features trains in seconds, and a time limit that the encoder's pass (or
    # fewshot's pair tuning) used up must not leave the head after one step
    loop_cfg = ctx.loop_config(epochs, lr, "train head", patience=max(cfg.patience, 10), precision="fp32",
                               eval_every=None, max_tokens_per_batch=None, deadline=None)
    return head, fit(HeadModel(head), loader, loss_fn, evaluate, loop_cfg, checkpoints=checkpoints)


@register
class ProbeStrategy(Strategy):
    name = "probe"
    epochs = 100
    lr = 1e-2
    batch_size = 128  # a linear head on fixed features: large batches, few optimizer steps

    def run(self, ctx: RunContext) -> StrategyResult:
        cfg, enc, task = ctx.cfg, ctx.encoder, ctx.task
        epochs, lr, batch_size = self.hyper(cfg, task)
        if task.level != "sequence":
            raise UserError(f"--strategy probe trains a head on cached pooled vectors; the '{task.name}' task needs "
                            "a vector per token: use --strategy full.")
        for p in enc.parameters():
            p.requires_grad_(False)
        named = {"train": ctx.splits.train, "validation": ctx.splits.validation, "test": ctx.splits.test}
        features, hits, tokens_encoded = pooled_features(enc, named, ctx.tokens, ctx.precision)

        head, result = train_head(ctx, features, epochs, lr, batch_size, ctx.checkpoints)
        trainable, _ = count_params(head)
        total = trainable + sum(p.numel() for p in enc.parameters())
        costs = {"trainable_params": trainable, "total_params": total, "cache_hits": hits,
                 "encode_tokens": tokens_encoded,
                 "train_flops_estimate": 2 * non_embedding_params(enc) * tokens_encoded}
        return StrategyResult(head=head, loop=result, encoder_trained=False,
                              features={k: np.asarray(v) for k, v in features.items()}, costs=costs)
