"""``auto --budget``: climb a ladder of strategies, cheapest first, until the time budget is spent.

The rungs are tried in order of cost: ``zeroshot`` (classification with labels that say
something in words), ``probe``, then ``fewshot`` (when the smallest class has at most
FEWSHOT_MAX_PER_CLASS examples), ``lora``, ``partial`` and ``full``. Each rung starts from
the pre-trained encoder (a fresh copy), trains until it finishes or the budget's deadline
passes (the loop then stops and keeps its best weights), and is scored on validation. A rung
whose estimated time exceeds what is left is skipped, except the first trainable one. The
best validation score wins (ties go to the cheaper rung); every rung's score, wall time and
trainable parameters go into the run's ``strategy_table``.
"""

from __future__ import annotations

import copy
import dataclasses
import time

from .. import progress
from .advisor import FEWSHOT_MAX_PER_CLASS, Estimate, smallest_class
from .base import STRATEGIES, RunContext, StrategyResult, split_outputs


def rungs(ctx: RunContext) -> list[str]:
    from .labels import has_descriptions

    task = ctx.task
    out = []
    if task.name == "classify" and has_descriptions(task, ctx.cfg.labels) and ctx.task.pair_mode != "bi":
        out.append("zeroshot")
    if task.level == "sequence":
        out.append("probe")
    smallest = smallest_class(task, ctx.splits.train)
    if task.name == "classify" and smallest is not None and smallest <= FEWSHOT_MAX_PER_CLASS \
            and task.pair_mode != "bi":
        out.append("fewshot")
    out += ["lora", "partial", "full"]
    return [r for r in out if r in STRATEGIES]


def run_ladder(ctx: RunContext, budget_seconds: float,
               est: dict[str, Estimate]) -> tuple[StrategyResult, str, str, list[dict]]:
    """(best result, its strategy, why, the table of every rung)."""
    start = time.monotonic()
    deadline = start + budget_seconds
    best: tuple[float, StrategyResult, str] | None = None
    table: list[dict] = []
    for name in rungs(ctx):
        left = deadline - time.monotonic()
        guess = est.get(name)
        row = {"strategy": name, "estimated_seconds": round(guess.seconds, 1) if guess else None}
        first_trainable = best is None or (name != "zeroshot" and all(r["strategy"] == "zeroshot"
                                                                        for r in table if "score" in r))
        if left <= 0 or (guess is not None and guess.seconds > left and not first_trainable):
            table.append({**row, "status": "skipped: the budget is spent" if left <= 0 else
                          f"skipped: estimated {guess.seconds:.0f} s > {left:.0f} s left"})
            continue
        progress.info(f"ladder: {name} ({left:.0f} s of the budget left)")
        # every rung starts from the pre-trained encoder; rungs that train change their own copy
        encoder = ctx.encoder if name in ("zeroshot", "probe") else copy.deepcopy(ctx.encoder)
        sub = dataclasses.replace(ctx, encoder=encoder, checkpoints=None, deadline=deadline)
        t0 = time.monotonic()
        result = STRATEGIES[name]().run(sub)
        result.encoder = result.encoder or encoder
        seconds = time.monotonic() - t0
        score = ctx.score(split_outputs(result, ctx, "validation"))
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
