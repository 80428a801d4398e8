"""The figures of run reports, layer probes and benches, as SVG text (see ``svg``).

Each function takes plain numbers (what metrics.json holds) and returns an SVG document;
nothing here reads files or knows a run folder, so reports, the ``probe`` command and the
benches share them. An SVG goes into an HTML page as it is.
"""

from __future__ import annotations

from .svg import COLORS, Panel, figure, heatmap


def learning_curves(runs: list[tuple]) -> str:
    """Train loss and validation metric by optimizer step, one line per run; the evaluation each run kept (its
    best, the one its scores come from) ringed.

    ``runs``: (name, loss_curve [[step, epoch, loss]...], history [{step, score, ...}...], metric name, and
    optionally the step kept: when missing, the best evaluation's).
    """
    legend = "" if len(runs) > 1 else None
    metric = runs[0][3] if runs else "score"
    loss = Panel("train loss (smoothed)", "optimizer step", "loss", legend=legend)
    val = Panel("validation score (ringed: the evaluation kept)", "optimizer step", f"validation {metric}",
                legend=legend)
    for k, (name, losses, history, _, *kept_step) in enumerate(runs):
        color = COLORS[k % len(COLORS)]
        if losses:
            loss.line([x[0] for x in losses], [x[2] for x in losses], color, name)
        if history:
            val.line([h["step"] for h in history], [h["score"] for h in history], color, name, marker=True)
            # a run keeps its best evaluation, which need not be its last: the figure its table shows
            at = [h for h in history if kept_step and h["step"] == kept_step[0]]
            kept = at[-1] if at else max(history, key=lambda h: h["score"])
            val.ring(kept["step"], kept["score"], color)
    return figure([(loss, 0, 0, 470, 330), (val, 480, 0, 470, 330)], 950, 330)


def confusion(matrix: list[list[int]], labels: list[str], title: str) -> str:
    """Counts with rows = true label, columns = predicted label; cells shaded by row share."""
    share = [[c / max(sum(row), 1) for c in row] for row in matrix]
    counts = [[str(int(c)) for c in row] for row in matrix]
    return heatmap(share, counts, [str(x) for x in labels], title, "predicted", "true")


def reliability(curves: list[tuple[str, list[dict], float]], title: str) -> str:
    """Accuracy against confidence per bin (the diagonal is perfect calibration), and examples per bin.

    ``curves``: (name, bins from ``calibrate.reliability``, ece).
    """
    top = Panel(title, "", "accuracy", xlim=(0, 1), ylim=(0, 1.02), legend="")
    counts = Panel("", "confidence (top probability)", "examples", xlim=(0, 1), ylog=True)
    top.line([0, 1], [0, 1], "#888888", "perfect", dash=True)
    n = max(len(curves), 1)
    width = 1.0 / max(len(curves[0][1]), 1) if curves else 0.1
    for k, (name, bins, ece) in enumerate(curves):
        used = [b for b in bins if b["count"]]
        color = COLORS[k % len(COLORS)]
        top.line([b["confidence"] for b in used], [b["accuracy"] for b in used], color, f"{name} (ECE {ece:.3f})",
                 marker=True)
        offset = (k - (n - 1) / 2) * width / n
        counts.bars([(b["lower"] + b["upper"]) / 2 + offset for b in bins], [b["count"] for b in bins],
                    width / n, color)
    return figure([(top, 0, 0, 500, 330), (counts, 0, 330, 500, 150)], 500, 480)


def layer_scores(rows: list[dict], metric: str, title: str) -> str:
    """Validation score by layer, one line per pooling. ``rows``: {layer, pooling, <metric>}."""
    layers = sorted({r["layer"] for r in rows})
    panel = Panel(title, "layer (emb = token embeddings)", f"validation {metric}", legend="pooling",
                  xticks=[(ly, "emb" if ly == 0 else str(ly)) for ly in layers])
    for k, p in enumerate(dict.fromkeys(r["pooling"] for r in rows)):
        pts = sorted((r["layer"], r[metric]) for r in rows if r["pooling"] == p)
        panel.line([x for x, _ in pts], [y for _, y in pts], COLORS[k % len(COLORS)], p, marker=True)
    return figure([(panel, 0, 0, 600, 360)], 600, 360)


def curves(series: dict[str, tuple[list[float], list[float], list[float]]], xlabel: str, ylabel: str,
           title: str) -> str:
    """Mean lines with a shaded spread (± std): ``series`` maps name -> (x, mean, std)."""
    panel = Panel(title, xlabel, ylabel, legend="")
    for k, (name, (x, mean, std)) in enumerate(series.items()):
        color = COLORS[k % len(COLORS)]
        panel.band(x, [m - s for m, s in zip(mean, std, strict=True)], [m + s for m, s in zip(mean, std, strict=True)],
                   color)
        panel.line(x, mean, color, name, marker=True)
    return figure([(panel, 0, 0, 600, 380)], 600, 380)
