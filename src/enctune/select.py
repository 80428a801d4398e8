"""``auto`` on few examples: the strategy the user's own data scores best under cross-validation.

With a few examples a class (at most ``FEW_PER_CLASS`` in the smallest), the validation split
carved from train holds a handful of rows (under ``SMALL_VALIDATION``): it can rank neither
checkpoints nor strategies, and the advisor's fixed rule (``advisor.choose_strategy``) was tuned
on one data set. So when ``auto`` runs without ``--budget`` on such data, every candidate is
scored by stratified k-fold cross-validation on all the examples (train and the few rows carved
from it; k = min(MAX_FOLDS, the smallest class); ``cv.cross_validate``, each fold trained from the
pre-trained encoder, a frozen encoder's features from the cache), and the best mean of the
task's primary metric wins; ties go to the candidate tried first, the cheapest. The winner
then trains on all of train, as a run of that strategy would.

Candidates are the ladder's rungs (``ladder.rungs``: the strategies that apply, ``fewshot`` only
up to its ``max_per_class``), cheapest first, plus ``probe`` started from the label names'
embeddings (``--init-head labels``) when the labels are words. The only threshold is the budget:
a candidate whose estimated cross-validation time (k times its estimate) would take the time
spent past half the budget is skipped, except the first, so the final run keeps the other half.
The table of every candidate (mean, standard deviation over folds, seconds, or why it was
skipped) is printed and stored in metrics.json's ``strategy_table``.
"""

from __future__ import annotations

import dataclasses
import time

from . import progress
from .cv import FOLD_METRICS, cross_validate
from .strategies import RunContext
from .strategies.advisor import DEFAULT_BUDGET_SECONDS, smallest_class
from .strategies.base import SMALL_VALIDATION, Estimate
from .strategies.labels import has_descriptions
from .strategies.ladder import rungs

# Three folds, not five: every example is held out once either way, so the estimate rests on as many held-out rows,
# while the candidates train 3 times on 2/3 of the examples instead of 5 times on 4/5. fewshot's pairs grow with
# the square of the examples (fewshot.pair_count): its cross-validation costs 3 (2/3)^2 = 1.3 runs instead of
# 5 (4/5)^2 = 3.2.
MAX_FOLDS = 3
# few examples: at most this many in the smallest class (the few-shot benchmark's larger size). Above it, a run on
# a few hundred rows keeps the advisor's pick: cross-validating seven candidates there costs many minutes
# (the quick start's 400 reviews would wait for full fine-tuning five times over).
FEW_PER_CLASS = 64


def applies(task, splits, cfg) -> bool:
    """Whether ``auto`` chooses by cross-validation here: a classification-like task (folds stratified by
    label, the primary metric averaged over folds) whose validation split was carved from few rows."""
    smallest = smallest_class(task, splits.train)
    return (cfg.budget is None and splits.validation_carved and len(splits.validation) < SMALL_VALIDATION
            and smallest is not None and 2 <= smallest <= FEW_PER_CLASS and task.primary_metric in FOLD_METRICS)


def candidates(ctx: RunContext) -> list[tuple[str, dict]]:
    """(strategy, config changes) to cross-validate, cheapest first."""
    out = []
    for name in rungs(ctx):
        out.append((name, {}))
        if name == "probe" and ctx.cfg.init_head == "auto" and ctx.cfg.labels is None \
                and has_descriptions(ctx.task, None):
            out.append((name, {"init_head": "labels"}))
    return out


def candidate_name(name: str, changes: dict) -> str:
    """A candidate as the command line would name it (``probe --init-head labels``)."""
    return name + "".join(f" --{k.replace('_', '-')} {v}" for k, v in changes.items())


def select_by_cv(ctx: RunContext, est: dict[str, Estimate],
                 budget_seconds: float | None = None) -> tuple[str, dict, str, list[dict]]:
    """(the kept strategy, its config changes, why, the table of every candidate); the run then trains the kept
    candidate on all of train."""
    from .training.seed import seed_all  # lazy: torch (~2 s)

    budget = budget_seconds or DEFAULT_BUDGET_SECONDS
    # the carved validation rows are the user's examples too: the folds use them all
    pool = dataclasses.replace(ctx.splits, train=ctx.splits.train + ctx.splits.validation)
    k = min(MAX_FOLDS, smallest_class(ctx.task, pool.train))
    metric = ctx.task.primary_metric
    progress.info(f"auto: {len(pool.train)} examples, too few for a validation split to choose by; each "
                  f"candidate is cross-validated ({k} folds)")
    t_start, table, best = time.monotonic(), [], None
    for name, changes in candidates(ctx):
        label = candidate_name(name, changes)
        guess = est[name].seconds * k if name in est else None
        spent = time.monotonic() - t_start
        if best is not None and guess is not None and spent + guess > budget / 2:
            table.append({"strategy": name, "settings": changes, "candidate": label, "status":
                          f"skipped: ~{guess:.0f} s of cross-validation would pass half the {budget / 60:.0f} min "
                          "budget"})
            progress.info(f"auto: {label:<28} {table[-1]['status']}")
            continue
        seed_all(ctx.cfg.seed)
        cv = cross_validate(ctx.cfg.model_copy(update={"cv": k, **changes}), pool, name, ctx.encoder.layer,
                            ctx.precision)
        score = cv["metrics"][metric]
        table.append({"strategy": name, "settings": changes, "candidate": label, "cv_mean": score["mean"],
                      "cv_std": score["std"], "folds": k, "seconds": cv["seconds"], "status": "cross-validated"})
        progress.info(f"auto: {label:<28} cross-validated {metric} {score['mean']:.4f} ± {score['std']:.4f} "
                      f"({cv['seconds']:.0f} s)")
        if best is None or score["mean"] > best[0]:
            best = (score["mean"], name, changes, label)
    score, name, changes, label = best
    for row in table:
        if row["candidate"] == label:
            row["status"] += ", kept"
    tried = sum("cv_mean" in r for r in table)
    progress.info(f"auto: kept {label}")
    seed_all(ctx.cfg.seed)  # the final run draws as a run of that strategy with this seed would
    return name, changes, (f"the best cross-validated {metric} ({score:.4f}, {k} folds of train) of {tried} "
                           f"candidates"), table
