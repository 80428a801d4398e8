"""``enctune train`` and ``enctune advise``: their options are ``TrainConfig``'s fields (``options``)."""

from __future__ import annotations

import json

import typer

from .. import api
from ..config import make_config
from ..tasks import TASKS
from .app import Opt, app, main_process, setup
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
    st = metrics.get("self_training")
    if st:
        lines.append(f"self-training on {st['pool']} unlabelled texts:")
        lines.append(f"{'round':>5} {'strategy':<10} {'pseudo':>7} {'validation':>10} {'test':>8}  status")
        for r in st["rounds"]:
            if "validation" not in r:
                lines.append(f"{r['round']:>5} {'-':<10} {'-':>7} {'-':>10} {'-':>8}  {r['status']}")
                continue
            test = f"{r['test']:.4f}" if r.get("test") is not None else "-"
            lines.append(f"{r['round']:>5} {r['strategy']:<10} {r['pseudo_labelled']:>7} {r['validation']:>10.4f} "
                         f"{test:>8}  {r['status']}")
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


@app.command()
def distill(
    run: str = typer.Argument(..., help="The teacher: a run folder of a task with one output per text."),
    out: str = Opt(..., "--out", help="The student's run folder."),
    unlabelled: str | None = Opt(None, "--unlabelled", help="Texts the teacher labels for the student (jsonl, csv, "
                                                           "tsv, json, parquet, or .txt one per line)."),
    layers: int | None = Opt(None, "--layers", min=1, help="Blocks the student keeps of the teacher's encoder, "
                                                           "evenly spaced, the top one kept [default: half]."),
    student: str | None = Opt(None, "--student", help="Start the student from this encoder (a folder or name) "
                                                      "with a new head, instead of the teacher's blocks."),
    data: str | None = Opt(None, "--data", help="Labelled data [default: the run's, from its config.json]."),
    text_column: str | None = Opt(None, "--text-column", help="Column holding the text [default: the run's]."),
    epochs: int | None = Opt(None, "--epochs", min=1, help="Epochs over the taught texts [default: 3]."),
    lr: float | None = Opt(None, "--lr", min=0, help="Learning rate [default: full fine-tuning's, 1e-4]."),
    batch_size: int | None = Opt(None, "--batch-size", min=1, help="Batch size [default: 32]."),
    temperature: float = Opt(2.0, "--temperature", help="Softmax temperature of the teacher's and student's "
                                                        "outputs in the soft loss."),
    hard_weight: float = Opt(0.5, "--hard-weight", help="Weight (0 to 1) of the labelled rows' own loss beside "
                                                        "the teacher's outputs."),
    seed: int = Opt(42, "--seed", help="Seed of the data order and dropout."),
    precision: str = Opt("auto", "--precision", help="fp32, bf16 or auto (bf16 where the hardware has it)."),
    overwrite: bool = Opt(False, "--overwrite", help="Replace a finished run already at --out."),
    quiet: bool = Opt(False, "--quiet", "-q", help="No progress bars or messages on stderr."),
    as_json: bool = Opt(False, "--json", help="Print the student's metrics as one JSON object."),
):
    """Teach a smaller, faster student the outputs of a trained run; writes the student's run folder, with
    both models' scores and prediction speed in its metrics.json."""
    setup(quiet or as_json)

    run_ = api.distill(run, out, unlabelled, layers, student=student, data=data, text_column=text_column,
                       epochs=epochs, lr=lr, batch_size=batch_size, temperature=temperature,
                       hard_weight=hard_weight, seed=seed, precision=precision, overwrite=overwrite)
    if as_json:
        print(json.dumps(run_.metrics))
        return
    d = run_.metrics["distillation"]
    split, metric = d["compared_on"], run_.metrics["primary_metric"]
    print("\n".join(metric_lines(run_.metrics)))
    print(f"teacher {split} {metric} {d['teacher_scores'][split][metric]:.4f}; the student keeps "
          f"{d['kept_share']:.1%} of it with {d['student_layers']} of {d['teacher_layers']} layers, and predicts "
          f"{d['speedup']}x as fast ({d['speed']['student']:.0f} against {d['speed']['teacher']:.0f} texts/s)")


@app.command()
def pretrain(
    data: str = Opt(..., "--data", help="Unlabelled text: .txt one per line, or any reader's text column."),
    out: str = Opt(..., "--out", help="The folder to write: an encoder that --model takes."),
    model: str = Opt("default", "--model", help="The encoder to continue from (a name, folder or run folder)."),
    objective: str = Opt("auto", "--objective", help="mlm (masked language modelling), tsdae (denoising "
                                                     "auto-encoder of the pooled vector) or auto (tsdae for a "
                                                     "sentence encoder, else mlm)."),
    text_column: str | None = Opt(None, "--text-column", help="Column holding the text [default: found by name]."),
    epochs: int | None = Opt(None, "--epochs", min=1, help="Epochs over the texts [default: 3]."),
    lr: float | None = Opt(None, "--lr", min=0, help="Learning rate [default: 5e-5 mlm, 3e-5 tsdae]."),
    batch_size: int | None = Opt(None, "--batch-size", min=1, help="Batch size [default: 32 mlm, 16 tsdae]."),
    max_length: int | None = Opt(None, "--max-length", min=8, help="Tokens per text at most [default: 256]."),
    mask_probability: float = Opt(0.15, "--mask-probability", help="mlm: the share of words masked."),
    seed: int = Opt(42, "--seed", help="Seed of the held-out split, the masks and the data order."),
    precision: str = Opt("auto", "--precision", help="fp32, bf16 or auto (bf16 where the hardware has it)."),
    budget: str | None = Opt(None, "--budget", help="Stop training at this time (90s, 10m, 1h)."),
    overwrite: bool = Opt(False, "--overwrite", help="Replace a folder this command wrote before."),
    checkpoint_every: int | None = Opt(None, "--checkpoint-every", min=1, help="Save a checkpoint every N steps "
                                                                              "(and at each epoch's end)."),
    resume: bool = Opt(False, "--resume", help="Continue from the latest checkpoint in --out."),
    quiet: bool = Opt(False, "--quiet", "-q", help="No progress bars or messages on stderr."),
    as_json: bool = Opt(False, "--json", help="Print the report as one JSON object."),
):
    """Continue pre-training an encoder on a domain's unlabelled text; the folder it writes is an encoder that
    'enctune train --model' takes."""
    setup(quiet or as_json)

    report = api.pretrain(model, data, out, objective, text_column=text_column, epochs=epochs, lr=lr,
                          batch_size=batch_size, max_length=max_length, mask_probability=mask_probability, seed=seed,
                          precision=precision, budget=budget, overwrite=overwrite,
                          checkpoint_every=checkpoint_every, resume=resume)
    if as_json:
        print(json.dumps(report))
        return
    loss = report["held_out_loss"]
    print(f"objective {report['objective']} ({report['reason']}); {report['texts']} texts, {report['epochs_run']} "
          f"epochs in {report['train_seconds']:.0f} s; held-out loss {loss['before']:.4f} -> {loss['after']:.4f}")
    print(f"next: enctune train --data LABELLED --model {out} --out RUN")
