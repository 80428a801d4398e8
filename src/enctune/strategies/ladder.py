"""``auto --budget``: climb a ladder of strategies, cheapest first, until the time budget is spent.

The rungs are the registered strategies with a ``ladder_rank`` that apply to the task and data
(``zeroshot`` only when the labels say something in words, ``fewshot`` only when the smallest
class has at most its ``max_per_class`` examples), in rank order. Each rung starts from the
pre-trained encoder (a fresh copy), trains until it finishes or the budget's deadline passes
(the loop then stops and keeps its best weights), and is scored on validation. A rung whose
estimated time exceeds what is left is skipped, except the first trainable one. The best
validation score wins (ties go to the cheaper rung); every rung's score, wall time and
trainable parameters go into the run's ``strategy_table``.
"""

from __future__ import annotations

import copy
import dataclasses
import time

from .. import progress
from .advisor import smallest_class
from .base import Estimate, RunContext, StrategyResult
from .registry import STRATEGIES, ladder


def rungs(ctx: RunContext) -> list[str]:
    """The strategies the ladder tries on this run's task and data, cheapest first."""
    smallest = smallest_class(ctx.task, ctx.splits.train)
    fits = [name for name, cls in STRATEGIES.items() if cls.applies(ctx.task, ctx.cfg, smallest) is None
            and (cls.max_per_class is None or (smallest is not None and smallest <= cls.max_per_class))]
    return ladder(fits)


def run_ladder(ctx: RunContext, budget_seconds: float, est: dict[str, Estimate],
               outputs) -> tuple[StrategyResult, str, str, list[dict]]:
    """(best result, its strategy, why, the table of every rung); ``outputs(result, ctx, split)`` gives a
    result's model outputs on a split (the evaluation step's)."""
    from ..training.seed import seed_all  # lazy: torch (~2 s); the ladder module loads with the registry

    start = time.monotonic()
    deadline = start + budget_seconds
    best: tuple[float, StrategyResult, str] | None = None
    table: list[dict] = []
    for name in rungs(ctx):
        cls = STRATEGIES[name]
        left = deadline - time.monotonic()
        guess = est.get(name)
        row = {"strategy": name, "estimated_seconds": round(guess.seconds, 1) if guess else None}
        trained_before = any("score" in r and STRATEGIES[r["strategy"]].trains for r in table)
        first_trainable = best is None or (cls.trains and not trained_before)
        if left <= 0 or (guess is not None and guess.seconds > left and not first_trainable):
            table.append({**row, "status": "skipped: the budget is spent" if left <= 0 else
                          f"skipped: estimated {guess.seconds:.0f} s > {left:.0f} s left"})
            continue
        progress.info(f"ladder: {name} ({left:.0f} s of the budget left)")
        # every rung starts from the pre-trained encoder; rungs that train change their own copy
        encoder = ctx.encoder if cls.frozen_features else copy.deepcopy(ctx.encoder)
        sub = dataclasses.replace(ctx, encoder=encoder, checkpoints=None, deadline=deadline)
        seed_all(ctx.cfg.seed)  # each rung draws as a run of its own strategy with this seed would
        t0 = time.monotonic()
        result = cls().run(sub)
        result.encoder = result.encoder or encoder
        seconds = time.monotonic() - t0
        score = ctx.score(outputs(result, ctx, "validation"))
        table.append({**row, "score": round(score, 6), "seconds": round(seconds, 1),
                      "trainable_params": result.costs.get("trainable_params"),
                      "status": "stopped at the budget" if result.loop.out_of_time else "finished"})
        progress.info(f"ladder: {name} validation {ctx.task.primary_metric} {score:.4f} in {seconds:.0f} s")
        if best is None or score > best[0]:
            best = (score, result, name)
    score, result, name = best
    for row in table:
        if row["strategy"] == name:
            row["status"] += ", kept"
    tried = sum("score" in r for r in table)
    reason = (f"the best validation {ctx.task.primary_metric} ({score:.4f}) of {tried} strategies tried in a "
              f"{budget_seconds / 60:.1f} min budget")
    return result, name, reason, table
