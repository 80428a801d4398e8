"""The advisor: which strategy fits this data and this machine, with estimates of what each costs.

Rules (each reason is printed and stored):
- a token-level task (tag, extract) needs a vector per token: ``full``;
- the smallest class has fewer than MIN_PER_CLASS_FOR_FULL examples: ``probe`` (a frozen
  encoder with a head, started from the label descriptions when ``--labels`` gives them,
  overfits least; full fine-tuning on a dozen examples a class moves 22M parameters on
  noise);
- full fine-tuning fits the time budget (20 minutes by default, ``--budget``): ``full``;
- else ``partial`` if it fits, else ``probe``.

Time estimates come from a throughput model: full fine-tuning processes about
CPU_TOKENS_PER_SEC_PER_CORE tokens per second per core for a 22.7M-parameter encoder (scaled
by parameter count); the forward pass is a third of a training step's cost, so a frozen
encoder's single pass costs a third per token; ``partial`` pays the forward pass and the
backward pass of its k of L layers; ``lora`` the forward and an activation-only backward
pass. Memory: weights + (gradients + AdamW's two moments) of what trains + activations.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch

CPU_TOKENS_PER_SEC_PER_CORE = 900.0
GPU_SPEEDUP = 30.0
DEFAULT_BUDGET_SECONDS = 20 * 60
MIN_PER_CLASS_FOR_FULL = 16
FEWSHOT_MAX_PER_CLASS = 64


@dataclass
class Estimate:
    strategy: str
    seconds: float
    memory_mb: float
    trainable_params: int
    note: str = ""


def _rate(n_params: int) -> float:
    """Training tokens per second of full fine-tuning on this machine."""
    if torch.cuda.is_available():
        return CPU_TOKENS_PER_SEC_PER_CORE * 8 * GPU_SPEEDUP * (22.7e6 / max(n_params, 1))
    cores = max(torch.get_num_threads(), 1)
    return CPU_TOKENS_PER_SEC_PER_CORE * cores * (22.7e6 / max(n_params, 1))


def estimates(task, n_train_tokens: int, n_eval_tokens: int, n_params: int, n_layers: int, hidden: int,
              epochs: int = 3, unfreeze: int | None = None, n_train: int = 0) -> dict[str, Estimate]:
    """What each strategy would cost on this data (seconds, peak memory, trainable parameters)."""
    rate = _rate(n_params)
    L = max(n_layers, 1)
    k = unfreeze or max(1, -(-L // 3))
    per_layer = n_params / (L + 2)  # embeddings count about two layers in small encoders
    weights_mb = n_params * 4 / 2**20
    act_mb = 32 * 128 * hidden * L * 20 * 4 / 2**20  # a batch of 32 x 128 tokens, ~20 saved tensors per layer
    forward = (n_train_tokens + n_eval_tokens) / (3 * rate)
    n_labels = max(len(getattr(task, "labels", []) or []), 1)
    out = {}
    seq = task.level == "sequence"
    if task.name == "classify":
        out["zeroshot"] = Estimate("zeroshot", n_eval_tokens / (3 * rate), weights_mb + 200, 0)
    if seq:
        out["probe"] = Estimate("probe", forward + 5, weights_mb + 300, hidden * n_labels + n_labels,
                                "one encoder pass, cached; the head trains in seconds")
    if task.name == "classify":
        from .fewshot import pair_count

        pairs = pair_count(n_train)
        tokens_per_text = n_train_tokens / max(n_train, 1)
        out["fewshot"] = Estimate("fewshot", pairs * 2 * tokens_per_text / rate + forward,
                                  weights_mb * 4 + act_mb, n_params, "contrastive pairs, then a head")
    trained = per_layer * k
    out["partial"] = Estimate("partial", epochs * n_train_tokens * (1 + 2 * k / L) / (3 * rate) + forward / 3,
                              weights_mb + trained * 12 / 2**20 + act_mb * k / L, int(trained),
                              f"top {k} of {L} layers")
    lora_params = int(L * 6 * 2 * 8 * hidden)  # rank 8 on ~6 projections per layer
    out["lora"] = Estimate("lora", epochs * n_train_tokens * 0.7 / rate + forward / 3,
                           weights_mb + act_mb, lora_params, "rank-8 adapters")
    emb = per_layer * 2
    out["full"] = Estimate("full", epochs * n_train_tokens / rate + forward / 3,
                           weights_mb + (n_params - emb) * 12 / 2**20 + act_mb, int(n_params - emb))
    return out


def smallest_class(task, train) -> int | None:
    key = task.stratify_key(train)
    return min(Counter(key).values()) if key else None


def choose_strategy(task, train, n_tokens: int, n_params: int, epochs: int = 3,
                    budget_seconds: float | None = None, est: dict[str, Estimate] | None = None) -> tuple[str, str]:
    """(strategy, reason) for a task and a training set of this many tokens."""
    if task.level == "token":
        return "full", f"the {task.name} task needs a vector per token, which only a trained encoder gives"
    smallest = smallest_class(task, train)
    if smallest is not None and smallest < MIN_PER_CLASS_FOR_FULL:
        return "probe", (f"the smallest class has {smallest} example(s) (< {MIN_PER_CLASS_FOR_FULL}): "
                         "a frozen encoder with a trained head overfits less")
    budget = budget_seconds or DEFAULT_BUDGET_SECONDS
    where = "a GPU" if torch.cuda.is_available() else f"{max(torch.get_num_threads(), 1)} CPU core(s)"
    if est is None:
        seconds = epochs * n_tokens / _rate(n_params)
    else:
        seconds = est["full"].seconds
    if seconds <= budget:
        return "full", f"about {seconds / 60:.1f} min of full fine-tuning on {where} fits the {budget / 60:.0f} min budget"
    if est is not None and "partial" in est and est["partial"].seconds <= budget:
        return "partial", (f"full fine-tuning would take about {seconds / 60:.0f} min on {where} "
                           f"(> {budget / 60:.0f} min); the top layers alone fit")
    return "probe", (f"full fine-tuning would take about {seconds / 60:.0f} min on {where} "
                     f"(> {budget / 60:.0f} min)")
