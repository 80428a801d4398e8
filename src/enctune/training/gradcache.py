"""Gradient caching: a contrastive loss over a whole batch that runs as several forward passes.

A loss that compares every row of a batch with every other (the retrieval task's in-batch
negatives) changes when the batch is cut into passes to bound memory (``max_tokens_per_batch``):
each pass would see only its own rows as negatives. Gradient caching (Gao et al., 2021,
"Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup") keeps the loss of
the whole batch at the memory of one pass:

1. every pass's outputs r_j (rows, D) are computed without a graph;
2. the loss L(r_1 ; ... ; r_k) of the whole batch is differentiated to the outputs alone,
   g_j = dL/dr_j (cheap: the outputs are small);
3. each pass runs again with a graph and back-propagates sum(r_j * g_j), whose gradient with
   respect to the weights is g_j^T dr_j/dtheta, the chain rule's share of that pass.

The weights' gradients are those of the whole batch at once, for the price of a second forward
pass (about a third more compute). Dropout draws the same masks in both passes: each pass's
random state is saved before its first run and restored before its second.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

import torch

from ..precision import autocast


def _rng_state() -> tuple:
    return torch.get_rng_state(), (torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None)


def _set_rng_state(state: tuple) -> None:
    cpu, cuda = state
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)


def cached_backward(model, pieces: list[dict], loss_fn: Callable, weight: float, device_type: str, precision: str,
                    backward: Callable, no_sync: Callable, sync_last: bool) -> float:
    """Back-propagate ``weight * loss_fn(outputs of all pieces, their labels)`` through ``model``, one piece at a
    time; returns the weighted loss. ``backward`` is the accelerator's; ``no_sync(model)`` holds the gradients'
    all-reduce back on every pass but the last one when ``sync_last`` (the last pass of the optimizer step).

    Args:
        pieces: collated inputs, each with its ``labels``, on the model's device: one batch cut into passes.
        weight: this batch's share of the step (its rows over the step's rows).
    """
    labels = torch.cat([p["labels"] for p in pieces])
    inputs = [{k: v for k, v in p.items() if k != "labels"} for p in pieces]
    states, outs = [], []
    with torch.no_grad():
        for x in inputs:
            states.append(_rng_state())
            with autocast(device_type, precision):
                outs.append(model(**x).float())
    reps = torch.cat(outs).requires_grad_()
    loss = loss_fn(reps, labels) * weight
    (grad,) = torch.autograd.grad(loss, reps)
    after = _rng_state()
    for j, (x, g, state) in enumerate(zip(inputs, grad.split([len(o) for o in outs]), states, strict=True)):
        _set_rng_state(state)
        last = sync_last and j == len(inputs) - 1
        with nullcontext() if last else no_sync(model):
            with autocast(device_type, precision):
                out = model(**x)
            backward((out.float() * g).sum())
    _set_rng_state(after)  # the random stream goes on as if each pass had run once
    return float(loss.item())
