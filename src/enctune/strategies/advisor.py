"""The advisor: which strategy fits this data and this machine, with estimates of what each costs.

Every strategy estimates its own cost (``Strategy.estimate``: seconds from a throughput model,
peak memory, trainable parameters) on the run's measured facts (``CostFacts``). The advisor
then picks, among the strategies that apply to the task, the one the registry prefers most
(``auto_rank``) whose needs the data meets (``min_per_class``: full fine-tuning on a dozen
examples a class moves 22M parameters on noise) and whose estimate fits the time budget (20
minutes by default, ``--budget``). When nothing fits, the cheapest strategy that applies.
Each reason is printed and stored.
"""

from __future__ import annotations

from collections import Counter

from .base import CostFacts, Estimate
from .registry import STRATEGIES

DEFAULT_BUDGET_SECONDS = 20 * 60


def smallest_class(task, train) -> int | None:
    """Examples in the smallest class of train (None for tasks without classes to count)."""
    key = task.stratify_key(train)
    return min(Counter(key).values()) if key else None


def estimates(facts: CostFacts, applicable: list[str]) -> dict[str, Estimate]:
    """What each applicable strategy would cost on this data (seconds, peak memory, trainable parameters)."""
    return {name: STRATEGIES[name].estimate(facts) for name in applicable}


def applicable(task, cfg, smallest: int | None) -> dict[str, str | None]:
    """Every registered strategy -> None when it applies to this task and data, else why not."""
    return {name: cls.applies(task, cfg, smallest) for name, cls in STRATEGIES.items()}


def choose_strategy(task, smallest: int | None, est: dict[str, Estimate], budget_seconds: float | None = None,
                    where: str = "this machine") -> tuple[str, str]:
    """(strategy, reason) among those in ``est`` (the applicable ones), for the advisor's rule above."""
    budget = budget_seconds or DEFAULT_BUDGET_SECONDS
    ranked = sorted((STRATEGIES[n] for n in est if STRATEGIES[n].auto_rank is not None),
                    key=lambda s: -s.auto_rank)
    passed: list[str] = []
    for cls in ranked:
        e = est[cls.name]
        if smallest is not None and smallest < cls.min_per_class:
            passed.append(f"{cls.name} needs at least {cls.min_per_class} examples in the smallest class, which "
                          f"has {smallest}")
            continue
        if e.seconds > budget:
            passed.append(f"{cls.name} would take about {e.seconds / 60:.1f} min on {where} (> {budget / 60:.0f} "
                          "min)")
            continue
        why = f"about {e.seconds / 60:.1f} min on {where}, within the {budget / 60:.0f} min budget"
        return cls.name, "; ".join([*passed, f"{cls.name}: {why}"])
    cheapest = min(est, key=lambda n: est[n].seconds)
    return cheapest, "; ".join([*passed, f"{cheapest}: the cheapest that applies"])
