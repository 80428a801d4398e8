"""The model card: the README.md of a model folder, written from the run's settings and metrics."""

from __future__ import annotations

from .tasks import TASKS


def model_card(meta: dict, metrics: dict) -> str:
    lines = [f"# enctune model: {meta['task']}", "",
             f"- base encoder: `{meta['base_model']}` ({meta['pooling']} pooling, max length {meta['max_length']})",
             f"- strategy: `{meta['strategy']}` ({metrics['strategy_reason']})",
             *([f"- labels: {', '.join(str(x) for x in meta['labels'])}"] if meta.get("labels") else [])]
    task = TASKS[meta["task"]].from_config(meta)
    for split in ("validation", "test"):
        if metrics.get(split):
            lines.append(f"- {split}: {task.summary(metrics[split])}")
    cal = metrics.get("calibration")
    if cal:
        lines.append(f"- calibration: temperature {cal['temperature']:.4f} fitted on validation"
                     + "".join(f"; {s} ECE {cal[s]['ece_before']:.4f} -> {cal[s]['ece_after']:.4f}"
                               for s in ("validation", "test") if s in cal))
    lines += ["", "Load it with `enctune.load(path)` or `enctune predict path TEXT...`.", ""]
    return "\n".join(lines)
