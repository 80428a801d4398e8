"""Self-training (``enctune train --unlabelled POOL``): the run's model labels unlabelled texts, and a student
trains on the labelled examples plus the pseudo-labels it is surest of.

One round:

1. the teacher (the run's kept model: round 0 is the ordinary run) gives every pool text a class c and a
   confidence p (its softmax probability);
2. per-class thresholds: among the texts given class c, those at or above the median p of that class are
   candidates (a class the model is less sure of gets a lower bar instead of being starved by one global bar);
3. class balance: the candidates are taken most confident first, in the labelled examples' class proportions,
   as many as the scarcest class allows (a pool the teacher labels mostly one way would otherwise tilt the
   student towards it);
4. the student trains from the pre-trained encoder on labelled + pseudo-labelled rows. With ``--strategy auto``
   the advisor picks its strategy again for the larger training set (thousands of pseudo-labelled texts
   afford fine-tuning that a hundred examples do not); a named strategy stays;
5. it is kept unless validation says it is worse than the labelled-only run (round 0) by more than that run's
   own standard error, sqrt(s (1 - s) / n) for a score s on n validation rows; the next round's teacher is the
   kept student.

A validation split carved from a few dozen rows (under ``SMALL_VALIDATION``: what ``auto`` on few examples has)
judges no student, as it ranks no checkpoint (``RunContext.keep_best``): the student is kept, and the table says
it was not judged. On SST-2 with 64 labelled examples a class (13 validation rows), the first-round students
scored 0.923 and 0.692 on validation against the labelled-only runs' 1.000 and 0.846, and 0.769 and 0.771 on
the 1,821 test texts against 0.722 and 0.764 (seeds 1 and 0): every validation rule threw the better model
away. On a validation split of hundreds of rows the margin is a point or two, and the rule asks for no real loss.

Judging instead on every labelled example, with students trained on pseudo-labels alone so that none of them
is seen, was tried and is biased: the pseudo-labels carry the teacher's fit of those very examples. On the same
SST-2 sample the students scored 0.875 and 0.891 on the 128 labelled examples, and 0.767 and 0.761 on test
(the teacher's cross-validated 0.774, its test 0.764).

Rounds stop at ``--self-training-rounds`` or at the first student not kept. metrics.json's
``self_training`` holds every round (pseudo-labels, thresholds, strategy, validation and test scores, seconds,
kept or not), and the run's model is the last kept one.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from . import progress, steps
from .data import Examples, read_inputs
from .errors import UserError
from .numeric import softmax

QUANTILE = 0.5  # a class's threshold: this quantile of the confidences of the pool texts given that class


def check(task, cfg) -> None:
    """UserError unless self-training applies to this run: one class per example."""
    if task.label_space != "classes":
        raise UserError(f"--unlabelled: self-training gives each text one class, and the '{task.name}' task's "
                        "labels are not classes.")
    if cfg.cv:
        raise UserError("--unlabelled with --cv: cross-validation scores the labelled examples alone; run one "
                        "or the other.")


def read_pool(cfg, task, columns) -> Examples:
    """The texts of ``--unlabelled`` (any reader; .txt one per line), read through the task like prediction
    inputs, once ``check`` says self-training applies."""
    check(task, cfg)
    pool = read_inputs(cfg.unlabelled, cfg.text_column, None, task, prefer=columns)[0]
    if len(pool) == 0:
        raise UserError(f"{cfg.unlabelled}: no texts to self-train on.")
    return pool


def pseudo_labels(probs: np.ndarray, prior: np.ndarray, quantile: float = QUANTILE
                  ) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Rows of the pool to pseudo-label, their classes, and each class's threshold (steps 2-3 of the module
    docstring).

    Args:
        probs: (N, C) class probabilities of the pool texts.
        prior: (C,) the labelled examples' class shares.

    Returns:
        rows (K,), classes (K,), thresholds (C,): no rows when some class with a prior gets no text.
    """
    pred, conf = probs.argmax(1), probs.max(1)
    ranked, thresholds = [], []
    for c in range(probs.shape[1]):
        rows = np.flatnonzero(pred == c)
        thr = float(np.quantile(conf[rows], quantile)) if len(rows) else 1.0
        thresholds.append(round(thr, 4))
        rows = rows[conf[rows] >= thr]
        ranked.append(rows[np.argsort(-conf[rows], kind="stable")])
    shares = prior / prior.sum()
    scale = min((len(r) / s for r, s in zip(ranked, shares, strict=True) if s > 0), default=0.0)
    take = [int(np.floor(scale * s)) for s in shares]
    rows = np.concatenate([r[:n] for r, n in zip(ranked, take, strict=True)]).astype(np.int64)
    classes = np.concatenate([np.full(n, c) for c, n in enumerate(take)]).astype(np.int64)
    return rows, classes, thresholds


def _pool_probs(outcome: steps.Outcome, pool: Examples) -> np.ndarray:
    """The kept model's class probabilities (N, C) for the pool texts, in fp32."""
    from .model import TaskModel, batched_logits  # lazy: torch (~2 s)

    ctx, result = outcome.ctx, outcome.adapted.result
    encoder = result.encoder or ctx.encoder
    tokens = ctx.task.prepare(encoder, pool).tokens
    with progress.bar("pseudo-labels", total=len(pool)) as pbar:
        logits = batched_logits(TaskModel(encoder, result.head, ctx.task.level), encoder, tokens, 256, "fp32",
                                progress=pbar)
    return softmax(logits)


def self_train(kept: steps.Outcome, pool: Examples, rounds: int, where: str) -> tuple[steps.Outcome, dict]:
    """Rounds of self-training from the run ``kept``; returns the outcome to keep and the report (the module
    docstring)."""
    from .training.seed import seed_all  # lazy: torch (~2 s)

    ctx = kept.ctx
    task, cfg, labelled = ctx.task, ctx.cfg, ctx.splits.train
    metric = task.primary_metric
    targets = np.asarray(ctx.prepared["train"].targets)
    prior = np.bincount(targets, minlength=len(task.labels)).astype(np.float64)
    best = ctx.score(kept.evaluation.outputs["validation"])
    floor = best - margin(best, len(ctx.splits.validation))
    judged = ctx.keep_best()  # a validation split carved from a few dozen rows ranks no checkpoint, nor a student
    table = [{"round": 0, "strategy": kept.adapted.strategy, "trained_on": len(labelled), "pseudo_labelled": 0,
              "validation": round(best, 6), "test": _test(kept, metric), "status": "labelled only"}]
    for r in range(1, rounds + 1):
        t0 = time.perf_counter()
        rows, classes, thresholds = pseudo_labels(_pool_probs(kept, pool), prior)
        if len(rows) == 0:
            table.append({"round": r, "status": "stopped: some class got no pool text", "thresholds": thresholds})
            break
        added = pool.subset(rows.tolist())
        train = labelled + Examples(added.texts, added.pairs, [task.labels[c] for c in classes])
        seed_all(cfg.seed)
        encoder = steps.load_encoder(cfg, task, layer=ctx.encoder.layer)
        splits = dataclasses.replace(ctx.splits, train=train)
        prepared = {**ctx.prepared, "train": task.prepare(encoder, train)}
        student = dataclasses.replace(ctx, encoder=encoder, splits=splits, prepared=prepared, checkpoints=None,
                                      deadline=None)
        choice = _student_choice(student, where)
        progress.info(f"self-training round {r}: {len(rows)} pseudo-labelled pool texts (of {len(pool)}) join "
                      f"{len(labelled)} labelled; student {choice.strategy} ({choice.reason})")
        adapted = steps.adapt(student, choice)
        task.record_head(adapted.result.head)
        evaluation = steps.evaluate(student, adapted.result)
        score = student.score(evaluation.outputs["validation"])
        keep = not judged or score >= floor
        outcome = steps.Outcome(student, adapted, evaluation)
        table.append({"round": r, "strategy": choice.strategy, "trained_on": len(train),
                      "pseudo_labelled": int(len(rows)), "thresholds": thresholds,
                      "validation": round(score, 6), "test": _test(outcome, metric),
                      "seconds": round(time.perf_counter() - t0, 1),
                      "status": ("kept" if judged else "kept: validation too small to judge") if keep else
                      f"not kept: validation {metric} {score:.4f} below {floor:.4f}"})
        progress.info(f"self-training round {r}: validation {metric} {score:.4f} (labelled only {best:.4f}, kept "
                      f"from {floor:.4f}): {'kept' if keep else 'not kept'}")
        if not keep:
            break
        kept = outcome
    return kept, {"pool": len(pool), "quantile": QUANTILE, "judged": judged, "floor": round(floor, 6),
                  "rounds": table, "kept_round": max(row["round"] for row in table
                                                     if row["status"].startswith("kept") or row["round"] == 0)}


def margin(score: float, rows: int) -> float:
    """The standard error of a score in [0, 1] measured on ``rows`` validation rows, sqrt(s (1 - s) / n) (that of
    a proportion: exact for accuracy, a guide for the other metrics)."""
    s = min(max(score, 0.0), 1.0)
    return float(np.sqrt(s * (1 - s) / max(rows, 1)))


def _student_choice(student, where: str) -> steps.Choice:
    """The student's strategy: the run's when named, else the advisor's for the larger training set."""
    cfg = student.cfg
    if cfg.strategy != "auto":
        return steps.Choice(cfg.strategy, "chosen with --strategy", {}, None)
    facts = steps.cost_facts(cfg, student.task, student.encoder, student.prepared, student.precision)
    return steps.choose(cfg, student.splits, facts, where, ladder=False)


def _test(outcome: steps.Outcome, metric: str) -> float | None:
    test = outcome.evaluation.scores.get("test")
    return round(float(test[metric]), 6) if test else None
