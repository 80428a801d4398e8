"""Gradient caching: a whole-batch loss run as several passes gives the whole batch's gradients."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch
from torch import nn

from enctune.tasks.heads import ranking_loss
from enctune.training.gradcache import cached_backward


class Toy(nn.Module):
    """Rows (B, 8) -> [u; v] (B, 8) through a linear layer with dropout."""

    def __init__(self, p: float):
        super().__init__()
        self.lin = nn.Linear(8, 8)
        self.drop = nn.Dropout(p)

    def forward(self, input_ids):
        return self.drop(self.lin(input_ids))


def loss_fn(reps, labels):
    u, v = reps.chunk(2, dim=-1)
    return ranking_loss(u, v, labels)


def grads(model):
    return torch.cat([p.grad.flatten() for p in model.parameters()])


@pytest.mark.parametrize("p", [0.0, 0.3])
def test_cached_passes_give_the_gradients_of_the_whole_batch(p):
    torch.manual_seed(0)
    model = Toy(p).train()
    x, labels = torch.randn(12, 8), torch.arange(12)
    pieces = [{"input_ids": x[a:b], "labels": labels[a:b]} for a, b in ((0, 5), (5, 9), (9, 12))]

    torch.manual_seed(1)
    # the reference: the same passes (the same dropout draws), one graph, the loss of all rows at once
    ref_loss = loss_fn(torch.cat([model(input_ids=q["input_ids"]) for q in pieces]), labels) * 0.5
    ref_loss.backward()
    ref = grads(model)
    after_ref = torch.rand(1)
    model.zero_grad()

    torch.manual_seed(1)
    got = cached_backward(model, pieces, loss_fn, 0.5, "cpu", "fp32", lambda loss: loss.backward(),
                          lambda m: nullcontext(), True)
    assert got == pytest.approx(ref_loss.item(), rel=1e-6)
    assert torch.allclose(grads(model), ref, atol=1e-6)
    assert torch.equal(torch.rand(1), after_ref)  # the random stream goes on as if each pass had run once
    if p == 0.0:  # without dropout, also the gradients of one pass over the whole batch
        model.zero_grad()
        (loss_fn(model(input_ids=x), labels) * 0.5).backward()
        assert torch.allclose(grads(model), ref, atol=1e-6)


def test_separate_passes_without_caching_would_train_another_loss():
    """Why the cache: each pass alone sees only its own rows as negatives, a different (easier) loss."""
    torch.manual_seed(0)
    model = Toy(0.0)
    x, labels = torch.randn(12, 8), torch.arange(12)
    whole = loss_fn(model(input_ids=x), labels)
    apart = sum(loss_fn(model(input_ids=x[a:b]), labels[a:b]) * (b - a) / 12 for a, b in ((0, 6), (6, 12)))
    assert apart < whole
