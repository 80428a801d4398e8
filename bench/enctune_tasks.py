"""The enctune side of the task rows, and the zero-training STS-B reference.

- ``train``: ``enctune.train(data=..., out=..., **flags)`` with the flags the row gives
  (``task``, ``strategy``, ``epochs``, ``batch_size``, ...; nothing else, so enctune's own
  defaults apply), timed end to end; the row names which entries of the run's
  ``metrics[split]`` to report (``scores``: result key -> [split, metric]).
- ``cosine_reference``: no training at all: the default encoder's pooled embeddings of the
  two texts of every test pair (``enctune.embed``), their cosine similarity ranked against
  the gold scores (Spearman, ``scipy.stats.spearmanr``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .data import read_jsonl
from .measure import scratch_dir


def train(args: dict) -> dict:
    import enctune

    with scratch_dir("enctune-bench-task-") as tmp:
        t0 = time.perf_counter()
        run = enctune.train(data=args["data"], out=str(tmp / "run"), **args.get("flags", {}))
        wall = time.perf_counter() - t0
    metrics = run.metrics
    out: dict = {"wall_seconds": round(wall, 2)}
    missing = []
    for key, (split, name) in args["scores"].items():
        value = (metrics.get(split) or {}).get(name)
        if value is None:
            missing.append(f"metrics[{split!r}][{name!r}]")
        out[key] = value
    if missing:
        raise KeyError(f"the run's metrics have no {', '.join(missing)}; splits present: "
                       f"{sorted(k for k, v in metrics.items() if isinstance(v, dict))}")
    costs = metrics.get("costs") or {}
    for k in ("train_seconds", "eval_seconds", "steps", "precision", "strategy"):
        if costs.get(k) is not None:
            out[k] = costs[k]
    for k in ("task", "strategy", "chosen_task"):
        if isinstance(metrics.get(k), str):
            out[k] = metrics[k]
    data = metrics.get("data") or {}
    if data.get("sizes"):  # what enctune trained and scored on (e.g. a carved validation split)
        out["data_sizes"] = data["sizes"]
        out["validation_carved"] = data.get("validation_carved")
    return out


def cosine_reference(args: dict) -> dict:
    """Spearman of cosine(embed(text), embed(text_pair)) against the gold scores of a split."""
    from scipy.stats import spearmanr

    import enctune

    t0 = time.perf_counter()
    rows = read_jsonl(Path(args["data"]) / f"{args['split']}.jsonl")
    a = np.asarray(enctune.embed(args.get("model", "default"), [r["text"] for r in rows]), dtype=np.float64)
    b = np.asarray(enctune.embed(args.get("model", "default"), [r["text_pair"] for r in rows]), dtype=np.float64)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    rho = spearmanr(cos, [float(r["label"]) for r in rows]).statistic
    return {f"{args['split']}_spearman": round(float(rho), 4), "pairs": len(rows),
            "wall_seconds": round(time.perf_counter() - t0, 2)}
