"""enctune's own L-BFGS and golden-section search against scipy.optimize, which they stand in for (importing
scipy.optimize costs ~0.25 s of a ~1.6 s warm probe)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize, minimize_scalar

from enctune.optim import golden_section, lbfgs


def _logistic(x: np.ndarray, y: np.ndarray, strength: float):
    """L2-regularised logistic loss and its gradient: the probe head's problem in miniature."""
    def fun(w):
        z = x @ w
        loss = np.mean(np.logaddexp(0, z) - y * z) + strength * w @ w
        grad = x.T @ (1 / (1 + np.exp(-z)) - y) / len(y) + 2 * strength * w
        return float(loss), grad
    return fun


@pytest.mark.parametrize("seed,strength", [(0, 1e-1), (1, 1e-3), (2, 1e-5)])
def test_lbfgs_reaches_scipys_minimum(seed, strength):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, 30))
    y = (x @ rng.normal(size=30) + rng.normal(size=200) > 0).astype(float)
    fun = _logistic(x, y, strength)
    ours = lbfgs(fun, np.zeros(30), max_iter=500, gtol=1e-6, ftol=1e-12)
    ref = minimize(fun, np.zeros(30), jac=True, method="L-BFGS-B", options={"maxiter": 500, "gtol": 1e-6})
    assert ours.fun == pytest.approx(ref.fun, rel=1e-6, abs=1e-9)
    assert np.abs(ours.x - ref.x).max() < 1e-2 * max(1.0, np.abs(ref.x).max())


def test_golden_section_finds_scipys_bounded_minimum():
    f = lambda u: math.exp(u) - 3 * u + 0.1 * u * u  # noqa: E731 (unimodal on the interval)
    ref = minimize_scalar(f, bounds=(-4, 4), method="bounded", options={"xatol": 1e-8})
    assert golden_section(f, -4, 4, tol=1e-8) == pytest.approx(ref.x, abs=1e-6)
