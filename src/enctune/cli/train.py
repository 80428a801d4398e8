"""``enctune train`` and ``enctune advise``: their options are ``TrainConfig``'s fields (``options``)."""

from __future__ import annotations

import json

from .. import api
from ..config import make_config
from ..tasks import TASKS
from .app import app, main_process, setup
from .options import command_with, config_fields, extra_option, option

ADVISE_FIELDS = ("data", "model", "budget", "task", "labels", "validation", "text_column", "text_pair_column",
                 "label_column", "max_length", "epochs")


def train(config: str | None = None, quiet: bool = False, as_json: bool = False, **flags) -> None:
    """Adapt an encoder to labelled data and write a run folder (model/, metrics.json, config.json, report.html)."""
    setup(quiet or as_json)

    run = api.train(make_config(flags, config))
    if not main_process():
        return
    print(json.dumps(run.metrics) if as_json else "\n".join(metric_lines(run.metrics)))


def metric_lines(metrics: dict) -> list[str]:
    """The run's summary for the terminal: scores per split (and calibration), the ladder's table, costs."""

    task = TASKS[metrics["task"]]()
    lines = []
    for split in ("validation", "test"):
        m = metrics.get(split)
        if m:
            cal = (metrics.get("calibration") or {}).get(split)
            note = ""
            if cal:
                kept = metrics["calibration"].get("kept", True)
                note = (f"  ECE {cal['ece_before']:.4f} -> {cal['ece_after']:.4f} calibrated" if kept else
                        f"  ECE {cal['ece_before']:.4f} (no temperature kept: "
                        f"{metrics['calibration'].get('why_not_kept', 'it would not lower validation ECE')})")
            lines.append(f"{split}: {task.summary(m)}{note}")
    reps = metrics.get("repeats")
    if reps:
        primary = metrics["primary_metric"]
        for split in ("validation", "test"):
            spread = (reps.get(split) or {}).get(primary)
            if spread:
                lines.append(f"{split} {primary} over {len(reps['seeds'])} seeds: {spread['mean']:.4f} ± "
                             f"{spread['std']:.4f} ({', '.join(f'{v:.4f}' for v in spread['values'])}); kept "
                             f"seed {reps['kept_seed']}, the best on validation")
    table = metrics.get("strategy_table")
    if table and any("cv_mean" in r for r in table):  # auto on few examples: cross-validated candidates
        lines.append(f"{'candidate':<28} {'cv ' + metrics['primary_metric']:>14} {'± std':>7} {'seconds':>8}  status")
        for r in table:
            mean, std = (f"{r['cv_mean']:.4f}", f"{r['cv_std']:.4f}") if "cv_mean" in r else ("-", "-")
            secs = f"{r['seconds']:.0f}" if "seconds" in r else "-"
            lines.append(f"{r['candidate']:<28} {mean:>14} {std:>7} {secs:>8}  {r['status']}")
    elif table:
        lines.append(f"{'strategy':<10} {'validation':>10} {'seconds':>8} {'trainable':>12}  status")
        for r in table:
            score = f"{r['score']:.4f}" if "score" in r else "-"
            secs = f"{r['seconds']:.0f}" if "seconds" in r else "-"
            tp = f"{r['trainable_params']:,}" if r.get("trainable_params") is not None else "-"
            lines.append(f"{r['strategy']:<10} {score:>10} {secs:>8} {tp:>12}  {r['status']}")
    c = metrics["costs"]
    lines.append(f"strategy {metrics['strategy']}; {c['wall_seconds']:.1f} s wall, "
                 f"{c['train_examples_per_second']:.0f} train examples/s, peak memory {c['peak_rss_mb']:.0f} MB, "
                 f"{c['trainable_params']:,} of {c['total_params']:,} parameters trained")
    return lines


def advise(quiet: bool = False, as_json: bool = False, **flags) -> None:
    """Recommend a strategy for this data and machine, with reasons and each strategy's time and memory."""
    setup(quiet or as_json)

    a = api.advise(make_config(flags))
    if as_json:
        print(json.dumps(a))
        return
    f = a["facts"]
    print(f"recommended: {a['strategy']} ({a['reason']})")
    print(f"data: task {f['task']}, {f['train_examples']} train examples"
          + (f", {f['labels']} labels, smallest class {f['smallest_class']}" if f["labels"] else "")
          + f", {f['mean_tokens']} tokens per text on average (max {f['max_tokens']})")
    print(f"machine: {f['device']}, {f['cores']} thread(s); encoder {f['encoder']} ({f['encoder_params']:,} "
          "parameters)")
    if a["ladder"]:
        print(f"with --strategy auto --budget {flags.get('budget')}: tries {', '.join(a['ladder'])} in that order")
    print(f"{'strategy':<10} {'time':>10} {'memory':>10} {'trains':>12}  note")
    for name, e in a["estimates"].items():
        t = e["seconds"]
        when = f"{t:.0f} s" if t < 120 else f"{t / 60:.1f} min"
        print(f"{name:<10} {'~' + when:>10} {'~' + str(e['memory_mb']) + ' MB':>10} {e['trainable_params']:>12,}  "
              f"{e['note']}")
    for name, why in a.get("not_applicable", {}).items():
        print(f"{name:<10} {'-':>10} {'-':>10} {'-':>12}  does not apply: {why}")


_QUIET = extra_option("quiet", bool, False, "--quiet", "-q", help="No progress bars or messages on stderr.")

app.command(name="train")(command_with(train, [
    *(option(n) for n in config_fields()),
    extra_option("config", str | None, None, "--config", help="A YAML or JSON file with the same option names "
                                                              "(flags given here win)."),
    _QUIET,
    extra_option("as_json", bool, False, "--json", help="Print the run's metrics as one JSON object."),
]))
app.command(name="advise")(command_with(advise, [
    *(option(n) for n in config_fields(ADVISE_FIELDS)),
    _QUIET,
    extra_option("as_json", bool, False, "--json", help="Print the advice as JSON."),
]))
