"""How fast this machine trains this encoder, measured: what the advisor's time estimates scale from.

A constant rate cannot hold across the CPUs enctune runs on: a Xeon with AMX trains a small encoder in
bf16 several times faster than an AVX2 core does in fp32. So ``measured_rate`` times a few training steps
of the run's own network (a copy: the run's weights do not move) on a batch of the data's mean length, at
the run's precision, and returns tokens per second of full fine-tuning. It costs well under a second
for a 22M-parameter encoder (two steps warm the kernels, the third is timed).
"""

from __future__ import annotations

import copy
import time

import torch

from ..precision import autocast

BATCH = 16
# A run's steady state is faster than its first steps (the allocator's pools, the caches): the best of three
# steps here reached 1,070-1,280 tokens/s where the default encoder's full run on the same data trained at 1,565
# (2 AVX2 cores, fp32; BENCHMARKS.md "estimates"), so the measurement is scaled by this.
STEADY_STATE = 1.3
MAX_PARAMS = 400_000_000  # above this a copy and its optimizer state cost more than the estimate is worth


def measured_rate(network: torch.nn.Module, precision: str, tokens_per_text: float, steps: int = 3) -> float | None:
    """Training tokens per second of full fine-tuning (forward, backward, AdamW step) of ``network`` on this
    machine; None when it cannot be measured here (too big, or a network that does not take token ids)."""
    if sum(p.numel() for p in network.parameters()) > MAX_PARAMS:
        return None
    length = max(8, round(tokens_per_text))
    vocab = int(getattr(network.config, "vocab_size", 1000) or 1000)
    ids = torch.randint(min(1000, vocab - 1), vocab, (BATCH, length), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    net = copy.deepcopy(network).train().requires_grad_(True)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-6)
    best = float("inf")
    try:
        for _ in range(steps):
            t0 = time.perf_counter()
            with autocast("cpu", precision):
                out = net(input_ids=ids, attention_mask=mask).last_hidden_state
            out.float().pow(2).mean().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            best = min(best, time.perf_counter() - t0)
    except Exception:  # a network with inputs of its own: the estimate falls back to the constant rate
        return None
    finally:
        del net, opt
    return STEADY_STATE * BATCH * length / best
