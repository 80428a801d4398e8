"""The figures of run reports and layer probes, as PNG bytes or inline base64 (matplotlib, Agg).

Each function takes plain numbers (what metrics.json holds) and returns PNG bytes; nothing
here reads files or knows a run folder, so reports and the ``probe`` command share them.
"""

from __future__ import annotations

import base64
import io

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def learning_curves(runs: list[tuple[str, list, list, str]]) -> bytes:
    """Train loss and validation metric by optimizer step, one line per run.

    ``runs``: (name, loss_curve [[step, epoch, loss]...], history [{step, score, ...}...], metric name).
    """
    plt = _plt()
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 3.6))
    for k, (name, losses, history, metric) in enumerate(runs):
        color = COLORS[k % len(COLORS)]
        if losses:
            ax_loss.plot([x[0] for x in losses], [x[2] for x in losses], color=color, label=name, lw=1.4)
        if history:
            ax_val.plot([h["step"] for h in history], [h["score"] for h in history], "o-", color=color,
                        label=name, lw=1.4, ms=4)
        ax_val.set_ylabel(f"validation {metric}")
    ax_loss.set_title("train loss (smoothed)")
    ax_loss.set_xlabel("optimizer step")
    ax_loss.set_ylabel("loss")
    ax_val.set_title("validation score")
    ax_val.set_xlabel("optimizer step")
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
        if len(runs) > 1:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def confusion(matrix: list[list[int]], labels: list[str], title: str) -> bytes:
    """Counts with rows = true label, columns = predicted label; cells shaded by row share."""
    import numpy as np

    plt = _plt()
    m = np.asarray(matrix, dtype=float)
    share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    size = min(3.4 + 0.5 * len(labels), 12)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), [str(x) for x in labels], rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), [str(x) for x in labels])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.6 else "black")
    fig.tight_layout()
    return _png(fig)


def reliability(curves: list[tuple[str, list[dict], float]], title: str) -> bytes:
    """Accuracy against confidence per bin (the diagonal is perfect calibration).

    ``curves``: (name, bins from ``calibrate.reliability``, ece).
    """
    plt = _plt()
    fig, (ax, ax_n) = plt.subplots(2, 1, figsize=(5, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1, label="perfect")
    width = 1.0 / max(len(curves[0][1]), 1) if curves else 0.1
    for k, (name, bins, ece) in enumerate(curves):
        used = [b for b in bins if b["count"]]
        color = COLORS[k % len(COLORS)]
        ax.plot([b["confidence"] for b in used], [b["accuracy"] for b in used], "o-", color=color, ms=4,
                label=f"{name} (ECE {ece:.3f})")
        offset = (k - (len(curves) - 1) / 2) * width / max(len(curves), 1)
        ax_n.bar([(b["lower"] + b["upper"]) / 2 + offset for b in bins], [b["count"] for b in bins],
                 width=width / max(len(curves), 1), color=color, alpha=0.7)
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax_n.set_xlabel("confidence (top probability)")
    ax_n.set_ylabel("examples")
    ax_n.set_yscale("log")
    fig.tight_layout()
    return _png(fig)


def layer_scores(rows: list[dict], metric: str, title: str) -> bytes:
    """Validation score by layer, one line per pooling. ``rows``: {layer, pooling, <metric>}."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    poolings = list(dict.fromkeys(r["pooling"] for r in rows))
    for k, p in enumerate(poolings):
        pts = sorted((r["layer"], r[metric]) for r in rows if r["pooling"] == p)
        ax.plot([x for x, _ in pts], [y for _, y in pts], "o-", color=COLORS[k % len(COLORS)], label=p)
    layers = sorted({r["layer"] for r in rows})
    ax.set_xticks(layers, ["emb" if ly == 0 else str(ly) for ly in layers])
    ax.set_xlabel("layer (emb = token embeddings)")
    ax.set_ylabel(f"validation {metric}")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(title="pooling", fontsize=8)
    fig.tight_layout()
    return _png(fig)


def curves(series: dict[str, tuple[list[float], list[float], list[float]]], xlabel: str, ylabel: str,
           title: str) -> bytes:
    """Mean lines with a shaded spread: ``series`` maps name -> (x, mean, std)."""
    import numpy as np

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for k, (name, (x, mean, std)) in enumerate(series.items()):
        color = COLORS[k % len(COLORS)]
        mean, std = np.asarray(mean), np.asarray(std)
        ax.plot(x, mean, "o-", color=color, label=name, ms=4)
        ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.15)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)
