"""Decoding logits without torch, for the ONNX runtime path: one function per task.

Each must return exactly what that task's ``Task.decode`` returns (a test holds them
together); a task missing here cannot be exported (``enctune export`` says so).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def decode_classify(logits: np.ndarray, labels: list, label_type: str = "str") -> list[dict]:
    """The arg-max label and the softmax probability of every label (as ``ClassifyTask.decode``)."""
    probs = softmax(logits.astype(np.float64))

    def out(i: int):
        return int(labels[i]) if label_type == "int" else labels[i]

    return [{"label": out(int(row.argmax())),
             "probabilities": {lab: float(x) for lab, x in zip(labels, row, strict=False)}} for row in probs]


DECODERS: dict[str, Callable[[np.ndarray, list, str], list[dict]]] = {"classify": decode_classify}


def confidence_classify(logits: np.ndarray) -> np.ndarray:
    """The top probability of each row: how sure the prediction is."""
    return softmax(logits.astype(np.float64)).max(axis=-1)


# tasks whose int8 predictions can be re-scored in fp32 where they are unsure (OnnxPredictor)
CONFIDENCE: dict[str, Callable[[np.ndarray], np.ndarray]] = {"classify": confidence_classify}
