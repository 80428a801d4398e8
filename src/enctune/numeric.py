"""NumPy maths shared by tasks, calibration and both predictors (no torch: the ONNX path uses it too).

    softmax(z)_c = exp(z_c - max z) / sum_k exp(z_k - max z)      (stable: no overflow for large logits)
    sigmoid(x)   = 1 / (1 + exp(-x))
"""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities over the last axis, in float64 (small differences between probabilities are what
    calibration and confidence thresholds read)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))
