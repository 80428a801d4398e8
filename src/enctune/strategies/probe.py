"""``probe``: the encoder stays frozen; a head trains on cached pooled features.

The encoder runs once over every split (length-sorted batches, inference mode) and its
pooled outputs are cached on disk (see ``encoders.cache``); a second run on the same texts
with the same encoder, pooling, layer and max length reads them back. The head then trains
for many epochs in seconds on the features; encoder cost is 2 N FLOPs per token, once.
"""

from __future__ import annotations

import time
from typing import Literal

import numpy as np
from pydantic import Field

from .. import progress
from ..optim import lbfgs
from .base import (
    START_SECONDS,
    CostFacts,
    Estimate,
    RunContext,
    Strategy,
    StrategyOptions,
    StrategyResult,
    count_params,
    head_from_labels,
)
from .full import non_embedding_params
from .registry import register

PRIOR_STRENGTH = 256.0  # examples' worth of belief in a head started from label descriptions


def prior_loss(loss_fn, head, n_train: int):
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


def pooled_features(enc, examples: dict, tokens: dict, precision: str) -> tuple[dict[str, np.ndarray], int, int]:
    """The frozen encoder's pooled vector (at its layer and pooling) for every split that has examples:
    (split -> (N, H) or (N, 2H) for pairs encoded apart, cache hits, tokens encoded). Read from the
    on-disk cache when there, else computed and stored; an encoder with a ``template`` keys the cache
    by the wrapped texts, which are what it encodes."""
    from ..encoders.cache import cached_features  # lazy: the feature cache runs the encoder (torch, ~1.5 s)

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
               checkpoints=None):
    """The task's head trained on fixed pooled features (B, H) through the loop: whole batches sliced out
    of the feature matrix, scored on validation features, started from the label descriptions (and
    held near them by ``prior_loss``) when the run has them."""
    import torch
    from torch.utils.data import DataLoader

    from ..model import HeadModel, head_logits  # lazy: torch (~2 s), like everything that trains
    from ..training.batching import ShuffledBatches  # lazy: torch (~2 s)
    from ..training.loop import fit  # lazy: torch (~2 s)

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


L2_PATH = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5)  # strong to weak, each solve starts at the last
# The one strength solved when validation is too small to rank strengths (``RunContext.keep_best``). On the
# default encoder's unit vectors, 8 examples a class, 5 seeds, 5 data sets (``python -m bench.head_l2``,
# BENCHMARKS.md), 3e-3 was within 1.1 points of each data set's best strength, while the strongest (0.1) lost
# 4.6 points on six-class TREC and the weakest (1e-5) 1.9 on financial_phrasebank.
UNRANKED_L2 = 3e-3
PATH_PATIENCE = 3  # strengths without a better validation score before the path stops
MAX_ITER = 300  # L-BFGS iterations per strength


class L2Solver:
    """Full-batch L-BFGS for ``loss_fn(head(x), y) + strength * ||W||^2`` over ``head``'s trainable
    parameters (W: its weight matrices; biases are not penalised). ``solve`` starts from the current
    parameters and leaves the solution in the head."""

    def __init__(self, head, loss_fn, x, y, on_eval=None):
        self.head, self.loss_fn, self.x, self.y, self.on_eval = head, loss_fn, x, y, on_eval
        self.params = [p for p in head.parameters() if p.requires_grad]
        self.decayed = [p.ndim >= 2 for p in self.params]
        self.strength = 0.0

    def get(self) -> np.ndarray:
        from torch.nn.utils import parameters_to_vector

        return parameters_to_vector(self.params).detach().double().numpy()

    def set(self, vec: np.ndarray) -> None:
        import torch
        from torch.nn.utils import vector_to_parameters

        with torch.no_grad():
            vector_to_parameters(torch.from_numpy(vec).float(), self.params)

    def objective(self, vec: np.ndarray) -> tuple[float, np.ndarray]:
        import torch

        self.set(vec)
        for p in self.params:
            p.grad = None
        loss = self.loss_fn(self.head(self.x), self.y)
        loss = loss + self.strength * sum((p ** 2).sum() for p, d in zip(self.params, self.decayed, strict=True) if d)
        loss.backward()
        grad = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in self.params])
        value = loss.item()
        if self.on_eval is not None:
            self.on_eval(value)
        return value, grad.double().numpy()

    def solve(self, strength: float, max_iter: int = MAX_ITER):
        """Minimise at ``strength``; an ``optim.OptimizeResult`` (``fun``, ``nit``, ``x``)."""
        from threadpoolctl import threadpool_limits

        self.strength = strength
        was = self.head.training
        self.head.eval()  # dropout is minibatch noise: off for the full-batch objective
        # numpy's BLAS threads spin-wait after each vector update and take the cores from torch's (with
        # scipy's L-BFGS-B this made every step ~10x slower): one thread for them
        with threadpool_limits(1, user_api="blas"):
            fit = lbfgs(self.objective, self.get(), max_iter=max_iter, gtol=1e-5, ftol=1e-9)
        self.set(fit.x)
        self.head.train(was)
        return fit


def solve_head(ctx: RunContext, features: dict[str, np.ndarray], unit: bool = False):
    """The head fitted on the whole training set at once: for each L2 strength on ``L2_PATH`` (a penalty
    ``strength * ||W||^2`` on the weight matrices, added to the task's mean loss), L-BFGS to convergence,
    each solve starting from the previous one; the strength with the best validation score is kept. When
    the validation split is too small to rank with (a few rows carved from a few dozen), ``UNRANKED_L2``
    alone is solved; ``--head-l2`` solves the strength it gives and no other. With ``unit`` (fewshot's head)
    and where the task allows, the head reads unit-length vectors (``heads.UnitNorm``): logistic regression on
    the directions a sentence encoder was trained to compare. The probe's own head keeps raw vectors until its
    runs on larger data are measured with them.

    A linear head on fixed features is a convex problem (logistic, softmax or squared loss): it has one
    answer per strength, which full-batch L-BFGS finds in a few hundred cheap steps, with no learning rate,
    batch size, epoch count or seed to choose. ``history`` holds one evaluation per strength; ``losses``
    the objective along the iterations.
    """
    import torch

    from ..model import head_logits  # lazy: torch (~2 s)
    from ..training.loop import LoopResult  # lazy: torch (~2 s)

    task = ctx.task
    head, _ = ctx.build_head(unit=unit)
    x, y = torch.from_numpy(features["train"]), ctx.targets["train"]
    val_x = features["validation"]
    fixed = getattr(ctx.cfg, "head_l2", None)
    # too small a validation to rank: one strength, 3e-3 on unit vectors, the path's strongest on raw ones (on raw
    # vectors, bench.head_l2: 0.1 was best or within a point of the best on all five data sets)
    path = (fixed,) if fixed else L2_PATH if ctx.keep_best() else ((UNRANKED_L2,) if unit else L2_PATH[:1])
    result = LoopResult()
    t0 = time.perf_counter()

    def count(value: float) -> None:
        result.steps += 1
        result.examples += len(x)
        if result.steps % 5 == 1:
            result.losses.append([result.steps, round(result.steps / MAX_ITER, 4), round(value, 6)])

    solver = L2Solver(head, task.loss, x, y, on_eval=count)
    best_vec, since_best = solver.get(), 0
    with progress.bar("solve head", total=len(path)) as pbar:
        for k, value in enumerate(path):
            fit = solver.solve(value)
            t_eval = time.perf_counter()
            score = ctx.score(head_logits(head, val_x))
            result.eval_seconds += time.perf_counter() - t_eval
            result.history.append({"step": result.steps, "epoch": k + 1, "lr": 0.0, "l2": value, "score": score,
                                   task.primary_metric: score, "train_loss": round(float(fit.fun), 6),
                                   "iterations": int(fit.nit)})
            better = score > result.best_score
            if better:
                result.best_score, result.best_step, best_vec, since_best = score, result.steps, fit.x, 0
            # the figure the run keeps is the best so far, not the last strength's: the status says both
            pbar.advance(1, status=f"l2 {value:g}: validation {task.primary_metric} {score:.4f}, best "
                                   f"{result.best_score:.4f}")
            if not better:
                since_best += 1
                if since_best >= PATH_PATIENCE:
                    result.stopped_early = k < len(path) - 1
                    break
    solver.set(best_vec)
    result.kept_step = result.best_step
    head.eval()
    result.epochs_run = float(len(result.history))
    result.seconds = time.perf_counter() - t0
    return head, result


def use_solver(cfg, task) -> bool:
    """Whether the probe's head is solved full-batch (``solve_head``) rather than trained by the loop:
    ``--head-solver lbfgs``, or ``auto`` unless the head starts from label descriptions (there early stopping
    near the start is what regularises) or checkpoints are asked for (the loop writes them)."""
    if cfg.head_solver != "auto":
        return cfg.head_solver == "lbfgs"
    return not head_from_labels(cfg, task) and not cfg.checkpoint_every and not cfg.resume


def head_solver_field():
    """``--head-solver``, shared by the strategies that train a head on fixed features (probe, fewshot)."""
    return Field("auto", description="probe, fewshot: lbfgs (the head solved on all of train at once, L2 chosen "
                                     "on validation), sgd (the training loop) or auto (lbfgs unless the head "
                                     "starts from --labels)")


def head_l2_field():
    """``--head-l2``, shared like ``head_solver_field``."""
    return Field(None, gt=0, description="probe, fewshot: the solved head's one L2 strength (penalty strength * "
                                         "||W||^2 on the mean loss) [chosen on validation along 0.1 ... 1e-5]")


class ProbeOptions(StrategyOptions):
    head_solver: Literal["auto", "lbfgs", "sgd"] = head_solver_field()
    head_l2: float | None = head_l2_field()


@register
class ProbeStrategy(Strategy):
    name = "probe"
    summary = "only the head, on pooled features of the frozen encoder, cached on disk"
    Options = ProbeOptions
    epochs = 100
    lr = 1e-2
    batch_size = 128  # a linear head on fixed features: large batches, few optimizer steps
    ladder_rank = 20
    auto_rank = 10  # the advisor's last resort: it fits any budget and overfits least
    frozen_features = True

    @classmethod
    def applies(cls, task, cfg, smallest_class):
        if task.level != "sequence":
            return (f"--strategy probe trains a head on cached pooled vectors; the '{task.name}' task needs a vector "
                    "per token: use --strategy full.")
        if not task.has_head:
            return (f"--strategy probe trains a head on a frozen encoder; the '{task.name}' task has no head (its "
                    "product is the embedding): use --strategy full, partial or lora.")
        return None

    @classmethod
    def estimate(cls, facts: CostFacts) -> Estimate:
        return Estimate(cls.name, facts.forward_seconds() + START_SECONDS, facts.weights_mb + 300,
                        facts.head_params or facts.hidden * facts.labels + facts.labels,
                        "one encoder pass, cached; the head trains in seconds")

    def run(self, ctx: RunContext) -> StrategyResult:
        cfg, enc, task = ctx.cfg, ctx.encoder, ctx.task
        epochs, lr, batch_size = self.hyper(cfg, task)
        enc.freeze()
        named = {"train": ctx.splits.train, "validation": ctx.splits.validation, "test": ctx.splits.test}
        features, hits, tokens_encoded = pooled_features(enc, named, ctx.tokens, ctx.precision)

        if use_solver(ctx.cfg, ctx.task):
            head, result = solve_head(ctx, features)
        else:
            head, result = train_head(ctx, features, epochs, lr, batch_size, ctx.checkpoints)
        trainable, _ = count_params(head)
        total = trainable + enc.num_params()
        costs = {"trainable_params": trainable, "total_params": total, "cache_hits": hits,
                 "encode_tokens": tokens_encoded,
                 # (with every feature cached the network was never built: nothing to count)
                 "train_flops_estimate": 2 * non_embedding_params(enc) * tokens_encoded if tokens_encoded else 0}
        return StrategyResult(head=head, loop=result, encoder_trained=False,
                              features={k: np.asarray(v) for k, v in features.items()}, costs=costs)

    def resolved(self, cfg, task, n_train):
        if use_solver(cfg, task):
            return {"head_solver": "lbfgs"}  # solved full-batch: no epochs, learning rate or batch size
        return {**super().resolved(cfg, task, n_train), "head_solver": "sgd"}

    @classmethod
    def write_encoder(cls, encoder, folder, trained):
        return super().write_encoder(encoder, folder, False)  # frozen: the source's files, linked
