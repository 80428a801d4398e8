"""The rule that picks a strategy when the user does not.

``full`` adapts every parameter and is the most accurate given enough examples and
compute; ``probe`` costs one encoder pass and is the safer choice with very few examples
per class (full fine-tuning overfits them) or when full fine-tuning would take too long on
the device at hand.
"""

from __future__ import annotations

from collections import Counter

import torch

# Rough CPU training throughput of full fine-tuning, tokens per second per core, for a
# 22M-parameter encoder; scaled by parameter count for larger ones.
CPU_TOKENS_PER_SEC_PER_CORE = 900.0
CPU_BUDGET_SECONDS = 20 * 60
MIN_PER_CLASS_FOR_FULL = 8


def choose_strategy(task, train, n_tokens: int, n_params: int, epochs: int = 3) -> tuple[str, str]:
    """(strategy, reason) for a task and a training set of this many tokens."""
    if task.level == "token":
        return "full", f"the {task.name} task needs a vector per token, which only a trained encoder gives"
    key = task.stratify_key(train)
    smallest = min(Counter(key).values()) if key else MIN_PER_CLASS_FOR_FULL
    if smallest < MIN_PER_CLASS_FOR_FULL:
        return "probe", (f"the smallest class has {smallest} example(s) (< {MIN_PER_CLASS_FOR_FULL}): "
                         "a frozen encoder with a trained head overfits less")
    if torch.cuda.is_available():
        return "full", "a GPU is available and every class has enough examples"
    cores = max(torch.get_num_threads(), 1)
    rate = CPU_TOKENS_PER_SEC_PER_CORE * cores * (22.7e6 / max(n_params, 1))
    est = epochs * n_tokens / rate
    if est > CPU_BUDGET_SECONDS:
        return "probe", (f"full fine-tuning would take about {est / 60:.0f} min on {cores} CPU core(s) "
                         f"(> {CPU_BUDGET_SECONDS // 60} min)")
    return "full", f"about {est / 60:.1f} min of full fine-tuning on {cores} CPU core(s) fits the budget"
