"""Calibrated probabilities for classifiers: temperature scaling and calibration error.

A classifier's softmax confidences are often too high after fine-tuning. Temperature
scaling (Guo et al., 2017) divides every logit vector by one scalar T > 0 fitted on the
validation split to minimise the negative log-likelihood

    T* = argmin_T  -1/N sum_i log softmax(z_i / T)[y_i]

which leaves every arg-max (and so accuracy and F1) unchanged and only rescales the
confidences. The expected calibration error sums, over B equal-width confidence bins,
the gap between accuracy and mean confidence weighted by the bin's share of examples:

    ECE = sum_b (n_b / N) |acc_b - conf_b|

``abstain`` turns a prediction whose calibrated top probability is below a threshold into
the label ``"unsure"``.
"""

from __future__ import annotations

import math

import numpy as np

from .numeric import softmax
from .optim import golden_section

N_BINS = 15
UNSURE = "unsure"
LOG_T_BOUNDS = (-4.0, 4.0)  # T between 0.018 and 55: wide enough for any sane classifier


def nll(logits: np.ndarray, targets: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``targets`` under softmax(logits / T)."""
    z = logits.astype(np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return float(-log_p[np.arange(len(targets)), targets].mean())


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The T > 0 minimising the NLL of ``targets`` (N,) under softmax(``logits`` (N, C) / T).

    One-dimensional and unimodal in log T, so a golden-section search on a bounded interval finds it;
    with no examples the identity (T = 1) is returned.
    """
    if len(targets) == 0:
        return 1.0
    log_t = golden_section(lambda u: nll(logits, targets, math.exp(u)), *LOG_T_BOUNDS, tol=1e-5)
    return float(math.exp(log_t))


def reliability(probs: np.ndarray, targets: np.ndarray, n_bins: int = N_BINS) -> dict:
    """Per confidence bin: count, mean confidence, accuracy; and the ECE they add up to."""
    conf = probs.max(axis=-1)
    correct = (probs.argmax(axis=-1) == targets).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bin b holds confidences in (edges[b], edges[b+1]]; a confidence of exactly 0 goes to bin 0
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    bins, ece, n = [], 0.0, max(len(targets), 1)
    for b in range(n_bins):
        mask = which == b
        count = int(mask.sum())
        if count:
            c, a = round(float(conf[mask].mean()), 6), round(float(correct[mask].mean()), 6)
            ece += count / n * abs(a - c)
        else:
            c = a = None
        bins.append({"lower": round(float(edges[b]), 4), "upper": round(float(edges[b + 1]), 4), "count": count,
                     "confidence": c, "accuracy": a})
    return {"ece": float(ece), "bins": bins}


def ece(probs: np.ndarray, targets: np.ndarray, n_bins: int = N_BINS) -> float:
    return reliability(probs, targets, n_bins)["ece"]


def calibration_report(temperature: float, logits: dict[str, np.ndarray], targets: dict[str, np.ndarray]) -> dict:
    """What goes into metrics.json: T, and per split the ECE and NLL before and after scaling."""
    out: dict = {"method": "temperature", "temperature": round(temperature, 6), "fitted_on": "validation",
                 "bins": N_BINS}
    for split, z in logits.items():
        y = targets[split]
        before, after = reliability(softmax(z), y), reliability(softmax(z / temperature), y)
        out[split] = {"ece_before": round(before["ece"], 6), "ece_after": round(after["ece"], 6),
                      "nll_before": round(nll(z, y), 6), "nll_after": round(nll(z, y, temperature), 6),
                      "reliability_before": before["bins"], "reliability_after": after["bins"]}
    return out


def abstain(predictions: list[dict], below: float | None) -> list[dict]:
    """Predictions whose top probability is under ``below`` get the label ``"unsure"``.

    The arg-max label stays available as ``best_guess``; probabilities are untouched.
    """
    if below is None:
        return predictions
    out = []
    for p in predictions:
        if "label" not in p:  # only single-label classifications abstain
            out.append(p)
            continue
        top = max(p["probabilities"].values()) if p.get("probabilities") else 0.0
        if top < below:
            p = {**p, "label": UNSURE, "best_guess": p["label"]}
        out.append(p)
    return out
