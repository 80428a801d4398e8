"""bench.ann: larger corpora grown from a real index's vectors keep the real rows and unit length."""

from __future__ import annotations

import numpy as np

from bench.ann import grown


def test_grown_keeps_the_real_rows_first_and_unit_length():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(10, 8)).astype(np.float32)
    real /= np.linalg.norm(real, axis=1, keepdims=True)
    x = grown(real, 50)
    assert x.shape == (50, 8) and np.array_equal(x[:10], real)
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    # each copy stays near some real row (the encoder's clusters survive the noise)
    assert (x[10:] @ real.T).max(1).min() > 0.8
    assert np.array_equal(grown(real, 4), real[:4])
