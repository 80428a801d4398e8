"""``fewshot``: contrastive pair tuning of the encoder, then a head on its pooled vectors.

For a few to some dozens of labelled examples per class (classification only). Two phases,
both through the one training loop:

1. **Pair tuning.** The encoder learns to put the cosine of two training examples' pooled
   vectors u = Enc(a), v = Enc(b) at the pair's target t (1 same label, 0 different):

       L = mean_pairs ( cos(u, v) - t )^2,      cos(u, v) = u.v / (|u| |v|)

   N examples give N(N-1)/2 pairs, so a handful of labels yields hundreds of distinct
   training signals, each of which moves the whole metric space rather than a classifier
   fitted to N points. The target for "different" is 0 (orthogonal), not -1: a sentence
   encoder trained with a cosine objective (the default encoder) puts unrelated texts near 0
   already, and asking for -1 would pull every class pair to opposite poles, a geometry
   that more than two classes cannot have and that tears the pre-trained space apart.

   Where the pairs come from (``--fewshot-loss``):

   - ``batch`` (the default): shuffled passes over the training examples, cut into batches
     of 2 x ``--batch-size`` texts (``PassBatches``), and every pair within a batch counts
     (``model.batch_pair_loss``, positives and negatives weighing half each): B encoded
     texts give B(B-1)/2 pairs.
   - ``pairs``: pairs drawn apart (``sample_pairs``), half positive, balanced over classes
     and pairs of classes, no pair repeated before every one was drawn; B encoded texts
     give B/2 pairs.

   Both encode the same number of texts. On the few-shot suite (8 a class, seeds 0-4,
   BENCHMARKS.md "round two") ``batch`` was ahead in 17 of 20 paired runs: +0.4 points on
   SST-2, +0.6 AG News, +5.2 TREC, +1.5 financial_phrasebank, in 1.1-1.2x the time (a batch
   of single texts pads to its longest; a pair batch pads each side apart).

   How much: ``--fewshot-pairs`` pairs' worth of texts (2 each), else enough to draw every
   distinct pair once (``pair_count``: N^2 (1 - 1/C) for N examples over C balanced
   classes, twice the distinct negative pairs since half are positive), at least
   PAIRS_PER_EXAMPLE per example and MIN_PAIRS, at most MAX_PAIRS. So the amount grows with
   the number of classes: 20 pairs per example had TREC (6 classes, 8 a class) see a third
   of its distinct pairs, and 2,000 pairs instead of 960 gained 12.2 points. One epoch over
   these at a small learning rate: with 16 examples, more steps or a larger rate overfit the
   few texts and lose what the pre-trained encoder knew. ``--epochs``, ``--lr`` and
   ``--batch-size`` set this phase. The word embeddings stay fixed (as in ``full``).

2. **A head** on the tuned encoder's pooled vectors of the training split, exactly as
   ``probe`` makes its head: L2-regularised logistic regression on the unit-length vectors,
   solved full-batch (``probe.solve_head``), or, started from the label descriptions when
   ``--labels`` gives them, trained by the loop (the task's probe defaults for epochs,
   learning rate and batch size). The features are computed afresh (not from the disk cache:
   the encoder changed). The head was first always trained by the loop, unregularised: on
   8 examples a class it fitted the few vectors exactly and lost to logistic regression on
   the same tuned vectors (financial_phrasebank seed 0: 0.659 against 0.803).

The tuned encoder is scored after phase 1 by the nearest-class-centroid accuracy on
validation: x goes to the class c maximising cos(Enc(x), mean_i normalize(Enc(x_i)) over
the train examples of c). It is computed on the pre-trained encoder too; when validation is
large enough to rank with and the tuning made it worse, the pre-trained weights come back
(the loop's keep-the-best rule, with the starting point as a candidate).

Cost: pairs x 2 texts x 6 N FLOPs per token for phase 1, then 2 N per token for one pass
over every split; the head trains in seconds.
"""

from __future__ import annotations

import time
from typing import Literal

import numpy as np
from pydantic import Field

from .. import progress
from ..errors import UserError
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
    one_input_classes,
)
from .full import non_embedding_params
from .probe import ProbeStrategy, head_l2_field, head_solver_field, solve_head, train_head, use_solver
from .registry import register

PAIRS_PER_EXAMPLE = 20
MIN_PAIRS = 200
MAX_PAIRS = 8000  # GoEmotions at 8 a class (28 classes) reaches it: a 350 s run on a 2-core AMD EPYC, fp32
ENUMERATE_MAX = 200_000  # candidate pairs per group listed outright; above, pairs are drawn at random
EVAL_ROWS = 2000  # validation rows the centroid score reads at most (a seeded subset beyond)
# Pairs train at this share of full fine-tuning's rate per token: their batches are not length-bucketed, so
# they carry more padding (875 against 1,565 tokens/s for the default encoder, BENCHMARKS.md "estimates").
PAIR_EFFICIENCY = 0.55


def pair_count(n_train: int, classes: int, given: int | None = None) -> int:
    """``given``, else the pairs that draw every distinct pair of ``n_train`` examples over ``classes``
    balanced classes once: half the draws are negative, and there are N^2 (1 - 1/C) / 2 distinct negative
    pairs (more than the N (N/C - 1) / 2 positive ones), so N^2 (1 - 1/C) draws. At least PAIRS_PER_EXAMPLE
    per example and MIN_PAIRS, at most MAX_PAIRS."""
    if given:
        return given
    every = int(n_train * n_train * (1 - 1 / max(classes, 2)))
    return min(max(every, PAIRS_PER_EXAMPLE * n_train, MIN_PAIRS), MAX_PAIRS)


def _spread(k: int, groups: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` items over ``groups`` as evenly as possible: each gets k // groups, and k % groups of them
    (chosen at random) one more."""
    counts = np.full(groups, k // groups, dtype=np.int64)
    counts[rng.choice(groups, k % groups, replace=False)] += 1
    return counts


def _picks(total: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` indices into range(total): every index k // total times, then k % total distinct ones at
    random (so no candidate repeats before all have been used)."""
    return np.concatenate([np.tile(np.arange(total), k // total), rng.choice(total, k % total, replace=False)])


def _within(members: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``k`` unordered pairs of distinct members."""
    m = len(members)
    if m * (m - 1) // 2 <= ENUMERATE_MAX:
        i, j = np.triu_indices(m, 1)
        p = _picks(len(i), k, rng)
        return members[i[p]], members[j[p]]
    i = rng.integers(0, m, k)
    j = (i + rng.integers(1, m, k)) % m  # uniform over the others
    return members[i], members[j]


def _across(a: np.ndarray, b: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``k`` pairs with one member from ``a`` and one from ``b``."""
    if len(a) * len(b) <= ENUMERATE_MAX:
        i, j = np.divmod(_picks(len(a) * len(b), k, rng), len(b))
        return a[i], b[j]
    return a[rng.integers(0, len(a), k)], b[rng.integers(0, len(b), k)]


def sample_pairs(labels, n_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Balanced contrastive pairs: (first indices, second indices, targets 1.0 / 0.0), shuffled.

    n_pairs // 2 positive pairs, spread evenly over the classes that have two examples or
    more (their counts differ by at most one), and the rest negative, spread evenly over the
    C(C-1)/2 pairs of classes (so every class takes part in as many negatives as any other).
    Within a class, or a pair of classes, no pair of examples repeats before every possible
    pair has been drawn once; a text is never paired with itself. Fixed by ``seed``.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    classes = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    if len(classes) < 2:
        raise UserError("--strategy fewshot: contrastive pairs need at least two classes.")
    paired = [m for m in classes if len(m) >= 2]
    n_pos = n_pairs // 2 if paired else 0
    firsts, seconds, targets = [], [], []
    for members, k in zip(paired, _spread(n_pos, max(len(paired), 1), rng), strict=False):
        a, b = _within(members, int(k), rng)
        firsts.append(a), seconds.append(b), targets.append(np.ones(len(a), np.float32))
    duo = [(c, d) for c in range(len(classes)) for d in range(c + 1, len(classes))]
    for (c, d), k in zip(duo, _spread(n_pairs - n_pos, len(duo), rng), strict=True):
        a, b = _across(classes[c], classes[d], int(k), rng)
        swap = rng.random(len(a)) < 0.5  # neither class always first
        a, b = np.where(swap, b, a), np.where(swap, a, b)
        firsts.append(a), seconds.append(b), targets.append(np.zeros(len(a), np.float32))
    a, b, t = (np.concatenate(x) for x in (firsts, seconds, targets))
    order = rng.permutation(len(a))
    return a[order], b[order], t[order]


def centroid_accuracy(encoder, train_tokens, train_y: np.ndarray, val_tokens, val_y: np.ndarray,
                      precision: str) -> float:
    """Validation accuracy of the nearest class centroid (cosine) of the train examples' vectors."""
    key = (encoder.layer, encoder.pooling)
    x = encoder.encode(train_tokens, precision=precision)[key]
    v = encoder.encode(val_tokens, precision=precision)[key]
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    classes = np.unique(train_y)
    centroids = np.stack([x[train_y == c].mean(0) for c in classes])
    pred = classes[(v @ centroids.T).argmax(1)]
    return float((pred == val_y).mean())


class FewshotOptions(StrategyOptions):
    fewshot_pairs: int | None = Field(None, ge=2, description="fewshot: contrastive pairs to draw [every distinct "
                                                              f"pair once, {MIN_PAIRS}-{MAX_PAIRS}]")
    head_solver: Literal["auto", "lbfgs", "sgd"] = head_solver_field()
    head_l2: float | None = head_l2_field()
    fewshot_loss: Literal["batch", "pairs"] = Field("batch", description="fewshot: every pair of each batch of "
                                                    "texts (batch), or pairs drawn apart (pairs)")


@register
class FewshotStrategy(Strategy):
    name = "fewshot"
    summary = "the encoder on pairs of examples (same label: similar, different: dissimilar), then a head"
    Options = FewshotOptions
    epochs = 1  # over the pairs
    lr = 2e-5
    batch_size = 16
    description = "pair tuning"
    ladder_rank = 30
    max_per_class = 64  # the ladder tries it when the smallest class has at most this many examples

    @classmethod
    def applies(cls, task, cfg, smallest_class):
        return one_input_classes(task, "fewshot", "tunes the encoder on pairs of same- and different-label examples")

    @classmethod
    def estimate(cls, facts: CostFacts) -> Estimate:
        """Each pair is two texts through a training step, then one frozen pass over every split."""
        pairs = pair_count(facts.train_examples, facts.labels, getattr(facts.options, "fewshot_pairs", None))
        per_text = facts.train_tokens / max(facts.train_examples, 1)
        return Estimate(cls.name, pairs * 2 * per_text / (facts.rate() * PAIR_EFFICIENCY) + facts.forward_seconds()
                        + START_SECONDS,
                        facts.weights_mb * 4 + facts.activations_mb, cls.trainable_params(facts) or facts.params,
                        "contrastive pairs, then a head")

    @classmethod
    def select_trainable(cls, cfg, network, n_layers):
        """The contrastive phase trains what full fine-tuning trains: all but the word embeddings."""
        all_but_word_embeddings(network, cfg.freeze_embeddings)

    def resolved(self, cfg, task, n_train):
        return {**super().resolved(cfg, task, n_train), "fewshot_pairs": pair_count(n_train, len(task.labels),
                                                                                      cfg.fewshot_pairs),
                "head_solver": "lbfgs" if use_solver(cfg, task) else "sgd"}

    def run(self, ctx: RunContext) -> StrategyResult:
        task = ctx.task
        why = self.applies(task, ctx.cfg, None)
        if why:
            raise UserError(why)
        if ctx.checkpoints is not None:
            raise UserError("--strategy fewshot trains in two short phases and writes no checkpoints: drop "
                            "--checkpoint-every / --resume.")
        pairs_result, pair_costs = self.tune_encoder(ctx)
        features, encode_tokens = self.features(ctx)
        head, head_result = self.train_head(ctx, features)
        head_trainable, _ = count_params(head)
        n_params = ctx.encoder.num_params()
        costs = {**pair_costs, "trainable_params": pair_costs["pair_trainable_params"] + head_trainable,
                 "head_trainable_params": head_trainable, "total_params": n_params + head_trainable,
                 "encode_tokens": encode_tokens,
                 "train_flops_estimate": 6 * non_embedding_params(ctx.encoder) * pairs_result.tokens
                 + 2 * non_embedding_params(ctx.encoder) * encode_tokens}
        return StrategyResult(head=head, loop=merge_results(pairs_result, head_result), encoder_trained=True,
                              features=features, costs=costs)

    # ---- phase 1 -------------------------------------------------------------------------------
    def tune_encoder(self, ctx: RunContext) -> tuple:
        """Train the encoder on balanced pairs (cosine target 1 same label, 0 different); returns the loop's
        record and the phase's costs."""
        import torch
        from torch.utils.data import DataLoader

        from ..distributed import sum_int  # lazy: torch (~2 s)
        from ..model import PairCosine, TaskModel, batch_pair_loss, pair_loss  # lazy: torch (~2 s)
        from ..training.batching import PassBatches, ShuffledBatches  # lazy: torch (~2 s)
        from ..training.loop import fit  # lazy: torch (~2 s)

        cfg, enc = ctx.cfg, ctx.encoder
        epochs, lr, batch_size = self.hyper(cfg, ctx.task)
        tokens = ctx.tokens["train"]
        y = ctx.targets["train"].numpy()
        n_pairs = pair_count(len(y), len(np.unique(y)), cfg.fewshot_pairs)
        self.select_trainable(cfg, enc.model, enc.num_layers)
        second_tokens = [0]  # the loop counts the first texts' tokens; the second texts' are counted here
        whole_batch = cfg.fewshot_loss == "batch"
        if whole_batch:  # the texts the drawn pairs would encode, in batches of 2 x batch_size, every pair of each
            model, loss = TaskModel(enc, torch.nn.Identity()), batch_pair_loss
            passes = max(1, round(2 * n_pairs / len(y)))
            labels = torch.from_numpy(y)

            def collate(idx):
                return {**enc.collate(tokens, np.asarray(idx)), "labels": labels[torch.as_tensor(idx)]}

            sampler = PassBatches(len(y), passes, 2 * batch_size, cfg.seed)
            full, rest = divmod(sampler.n, sampler.batch_size)
            drawn = {"pairs": full * sampler.batch_size * (sampler.batch_size - 1) // 2 + rest * (rest - 1) // 2,
                     "pair_passes": passes}
            what = f"{passes} passes, every pair of each batch"
        else:
            a, b, t = sample_pairs(y, n_pairs, cfg.seed)
            target = torch.from_numpy(t)
            model, loss = TaskModel(enc, PairCosine()), pair_loss

            def collate(idx):
                idx = np.asarray(idx, dtype=np.int64)
                second = {f"{k}_b": v for k, v in enc.collate(tokens, b[idx]).items()}
                second_tokens[0] += int(second["attention_mask_b"].sum())
                return {**enc.collate(tokens, a[idx]), **second, "labels": target[idx]}

            sampler = ShuffledBatches(len(a), batch_size, cfg.seed)
            drawn, what = {"pairs": len(a), "positive_pairs": int(t.sum())}, f"{len(a)} pairs"
        trainable, _ = count_params(model)
        loader = DataLoader(range(sampler.n), batch_sampler=sampler, collate_fn=collate)
        val_tokens, val_y = ctx.tokens["validation"], ctx.targets["validation"].numpy()
        if len(val_y) > EVAL_ROWS:
            keep = np.sort(np.random.default_rng(cfg.seed).choice(len(val_y), EVAL_ROWS, replace=False))
            val_tokens, val_y = val_tokens.subset(keep), val_y[keep]

        def evaluate(m):
            score = centroid_accuracy(m.encoder, tokens, y, val_tokens, val_y, ctx.precision)
            return score, {"centroid_accuracy": score}

        t0 = time.perf_counter()
        start_score = evaluate(model)[0]
        start = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}
        t_start = time.perf_counter() - t0
        # A second text per row: the loop's per-pass token cap would cut it by the first text's mask.
        loop_cfg = ctx.loop_config(epochs, lr, f"{self.description} ({what})", max_tokens_per_batch=None,
                                   whole_batch_loss=whole_batch)
        result = fit(model, loader, loss, evaluate, loop_cfg)
        result.tokens += sum_int(second_tokens[0])
        result.seconds += t_start
        result.eval_seconds += t_start
        restored = bool(loop_cfg.keep_best and result.best_score < start_score)
        if restored:  # the tuning made the vectors worse at telling the classes apart: keep the start
            model.load_state_dict(start, strict=False)
            progress.info(f"fewshot: pair tuning lowered the validation centroid accuracy ({start_score:.4f} -> "
                          f"{result.best_score:.4f}); keeping the pre-trained encoder")
        for p in enc.parameters():
            p.requires_grad_(False)
        enc.eval()
        step = max(1, len(result.losses) // 20)
        costs = {**drawn, "pair_steps": result.steps,
                 "pair_seconds": round(result.seconds, 2), "pair_trainable_params": trainable,
                 "pair_lr": lr, "pair_batch_size": batch_size, "pair_epochs": epochs,
                 "centroid_accuracy_before": round(start_score, 6),
                 "centroid_accuracy_after": round(result.best_score, 6), "pair_tuning_kept": not restored,
                 "pair_loss_curve": [[s, loss] for s, _, loss in result.losses[::step]]}
        return result, costs

    # ---- phase 2 -------------------------------------------------------------------------------
    def features(self, ctx: RunContext) -> tuple[dict[str, np.ndarray], int]:
        """Pooled vectors of every split from the tuned encoder, and the tokens encoded."""
        enc, out, n_tokens = ctx.encoder, {}, 0
        for split in ("train", "validation", "test"):
            if split not in ctx.prepared:
                continue
            tok = ctx.tokens[split]
            with progress.bar(f"encode {split}", total=len(tok)) as pbar:
                out[split] = enc.encode(tok, precision=ctx.precision, progress=pbar)[(enc.layer, enc.pooling)]
            n_tokens += int(tok.lengths().sum())
        return out, n_tokens

    def train_head(self, ctx: RunContext, features: dict[str, np.ndarray]) -> tuple:
        """The task's head on fixed features, as ``probe`` trains it: solved full-batch (``probe.solve_head``)
        unless it starts from label descriptions, else by the loop with the probe's settings for this task."""
        if use_solver(ctx.cfg, ctx.task):
            return solve_head(ctx, features, unit=True)
        d = ctx.task.defaults.get("probe", {})
        return train_head(ctx, features, d.get("epochs", ProbeStrategy.epochs), d.get("lr", ProbeStrategy.lr),
                          d.get("batch_size", ProbeStrategy.batch_size))


def merge_results(pairs, head):
    """The head's record (its history is what picked the weights kept), with the time, rows and tokens of
    the pair phase added so that the run's training costs count both phases."""
    head.seconds += pairs.seconds
    head.eval_seconds += pairs.eval_seconds
    head.examples += pairs.examples
    head.tokens += pairs.tokens
    head.out_of_time = head.out_of_time or pairs.out_of_time
    return head
