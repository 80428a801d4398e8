"""The command line: a thin shell over ``enctune.api``.

Every user mistake is a ``UserError``: its message goes to stderr and the exit code is 2,
without a traceback. Progress goes to stderr; results (and ``--json``) to stdout.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import warnings
from pathlib import Path

import typer

from .atomic import atomic_write
from .errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Adapt pre-trained sequence encoders: train, evaluate, predict, embed.")

Opt = typer.Option


def _setup(quiet: bool) -> None:
    from . import progress

    progress.set_quiet(quiet)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    def show(message, category, filename, lineno, file=None, line=None):
        if not progress.is_quiet():  # quiet, or a process other than the main one
            print(f"warning: {message}", file=sys.stderr)

    warnings.showwarning = show
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


@app.command()
def train(
    data: str | None = Opt(None, "--data", help="A data file (train) or a folder with train/validation/test files."),
    out: str | None = Opt(None, "--out", help="Run folder to write [default: runs/latest]."),
    validation: str | None = Opt(None, "--validation", help="Validation file (else carved from train)."),
    test: str | None = Opt(None, "--test", help="Test file, evaluated at the end of the run."),
    model: str | None = Opt(None, "--model", help="Encoder: 'default', a local folder or a hub id."),
    task: str | None = Opt(None, "--task", help="auto, classify, multilabel, regress, tag or extract "
                                                   "[default: auto, from the data's shape]."),
    strategy: str | None = Opt(None, "--strategy", help="auto, zeroshot, probe, fewshot, partial, lora or full "
                                                         "[default: auto: the advisor's choice; with --budget, a ladder]."),
    budget: str | None = Opt(None, "--budget", help="auto: try strategies cheapest first within this time "
                                                    "(90s, 10m, 1h) and keep the best on validation."),
    labels: str | None = Opt(None, "--labels", help="Label descriptions: 'pos: a happy customer|loved it;neg: an "
                                                    "angry customer' (zeroshot, and the head's start)."),
    template: str | None = Opt(None, "--template", help="Instruction around each label description, e.g. "
                                                        "'This review is {}.'; in cloze mode around each text, "
                                                        "with the mask: '{} It was [MASK].'"),
    init_head: str | None = Opt(None, "--init-head", help="random, labels (from the descriptions) or auto "
                                                          "[labels when --labels is given]."),
    zeroshot_mode: str | None = Opt(None, "--zeroshot-mode", help="similarity, cloze (masked-LM encoders) or auto."),
    unfreeze_layers: int | None = Opt(None, "--unfreeze-layers", help="partial: top layers that train "
                                                                      "[a third of them]."),
    layer_lr_decay: float | None = Opt(None, "--layer-lr-decay", help="partial/full: learning rate x this per "
                                                                      "layer down (e.g. 0.8)."),
    lora_r: int | None = Opt(None, "--lora-r", help="lora: adapter rank [8]."),
    lora_alpha: float | None = Opt(None, "--lora-alpha", help="lora: scaling alpha [16]."),
    lora_dropout: float | None = Opt(None, "--lora-dropout", help="lora: adapter dropout [0.1]."),
    lora_targets: str | None = Opt(None, "--lora-targets", help="lora: comma-separated module names "
                                                                "[every linear layer of the encoder blocks]."),
    fewshot_pairs: int | None = Opt(None, "--fewshot-pairs", help="fewshot: contrastive pairs to draw [auto]."),
    keep: str | None = Opt(None, "--keep", help="best, last or auto [best unless validation is a tiny split "
                                                "carved from train]."),
    head_solver: str | None = Opt(None, "--head-solver", help="probe: lbfgs (the head solved on all of train "
                                                              "at once, L2 chosen on validation), sgd (the "
                                                              "training loop) or auto [lbfgs unless the head "
                                                              "starts from --labels]."),
    text_column: str | None = Opt(None, "--text-column"),
    text_pair_column: str | None = Opt(None, "--text-pair-column"),
    label_column: str | None = Opt(None, "--label-column"),
    epochs: int | None = Opt(None, "--epochs"),
    batch_size: int | None = Opt(None, "--batch-size"),
    lr: float | None = Opt(None, "--lr"),
    max_length: int | None = Opt(None, "--max-length"),
    seed: int | None = Opt(None, "--seed"),
    precision: str | None = Opt(None, "--precision", help="auto, fp32 or bf16."),
    pooling: str | None = Opt(None, "--pooling", help="cls, mean, max or last [default: the encoder's]."),
    layer: str | None = Opt(None, "--layer", help="Encoder layer to pool (0 = embeddings, -1 = last; "
                            "'best' with --strategy probe: the layer a linear probe scores best on)."),
    class_weights: str | None = Opt(None, "--class-weights", help="none or balanced."),
    dropout: float | None = Opt(None, "--dropout"),
    weight_decay: float | None = Opt(None, "--weight-decay"),
    warmup_ratio: float | None = Opt(None, "--warmup-ratio"),
    grad_accum: int | None = Opt(None, "--grad-accum"),
    patience: int | None = Opt(None, "--patience", help="Evaluations without improvement before stopping."),
    eval_every: int | None = Opt(None, "--eval-every", help="Evaluate every N optimizer steps."),
    validation_fraction: float | None = Opt(None, "--validation-fraction"),
    freeze_embeddings: bool | None = Opt(None, "--freeze-embeddings/--train-embeddings",
                                         help="full: keep the word-embedding matrix fixed [default: freeze]."),
    trust_remote_code: bool | None = Opt(None, "--trust-remote-code", help="Allow model code from the folder."),
    pair_mode: str | None = Opt(None, "--pair-mode", help="Text pairs: cross (one input), bi (encoded apart) or "
                                                         "auto [bi for regress, else cross]."),
    label_delimiter: str | None = Opt(None, "--label-delimiter", help="multilabel: separator in string labels [,]."),
    at_least_one: bool | None = Opt(None, "--at-least-one/--allow-no-label",
                                    help="multilabel: always predict a label [default: when every train row has one]."),
    max_answer_length: int | None = Opt(None, "--max-answer-length", help="extract: most tokens in an answer [30]."),
    doc_stride: int | None = Opt(None, "--doc-stride", help="extract: token overlap of context windows [128]."),
    allow_pickle: bool | None = Opt(None, "--allow-pickle",
                                    help="Read an encoder folder that carries pickle files (*.bin, *.pt, *.pkl)."),
    checkpoint_every: int | None = Opt(None, "--checkpoint-every",
                                       help="Checkpoint every N optimizer steps (and at each epoch end)."),
    resume: bool | None = Opt(None, "--resume", help="Continue from the latest checkpoint in OUT/checkpoints."),
    max_tokens_per_batch: int | None = Opt(None, "--max-tokens-per-batch",
                                           help="Cap padded tokens per forward pass (bigger batches run in parts)."),
    gradient_checkpointing: bool | None = Opt(None, "--gradient-checkpointing",
                                              help="full: recompute activations in backward (less memory)."),
    calibrate: bool | None = Opt(None, "--calibrate/--no-calibrate",
                                 help="classify: fit a temperature on validation for calibrated probabilities "
                                      "[default: calibrate]."),
    cv: int | None = Opt(None, "--cv", help="Stratified k-fold cross-validation on train before the final run."),
    add: str | None = Opt(None, "--add", help="Labelled file appended to train (e.g. 'enctune suggest' rows)."),
    config: str | None = Opt(None, "--config", help="YAML or JSON file with the same option names."),
    quiet: bool = Opt(False, "--quiet", "-q"),
    as_json: bool = Opt(False, "--json", help="Print the run's metrics as JSON."),
):
    """Adapt an encoder to labelled data and write a run folder (model/, metrics.json, config.json)."""
    _setup(quiet or as_json)
    from . import api
    from .config import make_config

    flags = {k: v for k, v in locals().items() if k not in ("config", "quiet", "as_json", "api", "make_config")}
    cfg = make_config(flags, config)
    run = api.train(cfg)
    if not _main_process():
        return
    if as_json:
        print(json.dumps(run.metrics))
    else:
        _print_metrics(run.metrics)


def _summary(task_name: str, m: dict) -> str:
    from .tasks import TASKS

    return TASKS[task_name]().summary(m)


def _print_metrics(metrics: dict) -> None:
    for split in ("validation", "test"):
        m = metrics.get(split)
        if m:
            cal = (metrics.get("calibration") or {}).get(split)
            print(f"{split}: {_summary(metrics['task'], m)}"
                  + (f"  ECE {cal['ece_before']:.4f} -> {cal['ece_after']:.4f} calibrated" if cal else ""))
    table = metrics.get("strategy_table")
    if table:
        print(f"{'strategy':<10} {'validation':>10} {'seconds':>8} {'trainable':>12}  status")
        for r in table:
            score = f"{r['score']:.4f}" if "score" in r else "-"
            secs = f"{r['seconds']:.0f}" if "seconds" in r else "-"
            tp = f"{r['trainable_params']:,}" if r.get("trainable_params") is not None else "-"
            print(f"{r['strategy']:<10} {score:>10} {secs:>8} {tp:>12}  {r['status']}")
    c = metrics["costs"]
    print(f"strategy {metrics['strategy']}; {c['wall_seconds']:.1f} s wall, {c['train_examples_per_second']:.0f} "
          f"train examples/s, peak memory {c['peak_rss_mb']:.0f} MB, {c['trainable_params']:,} of "
          f"{c['total_params']:,} parameters trained")


@app.command()
def evaluate(
    run: str = typer.Argument(..., help="Run folder (or its model/ folder)."),
    data: str = Opt(..., "--data", help="Labelled file to score."),
    text_column: str | None = Opt(None, "--text-column"),
    text_pair_column: str | None = Opt(None, "--text-pair-column"),
    label_column: str | None = Opt(None, "--label-column"),
    batch_size: int = Opt(256, "--batch-size", min=1, help="Most texts per batch (batches also hold a token budget)."),
    quiet: bool = Opt(False, "--quiet", "-q"),
    as_json: bool = Opt(False, "--json", help="Print the metrics as one JSON object."),
):
    """Score a trained model on a labelled file."""
    _setup(quiet or as_json)
    from . import api

    m = api.evaluate(run, data, text_column, text_pair_column, label_column, batch_size)
    if as_json:
        print(json.dumps(m))
        return
    print(f"examples {m['n']}  {_summary(m['task'], m)}" + (f"  ECE {m['ece']:.4f}" if "ece" in m else ""))
    rows = m.get("per_class") or m.get("per_label") or m.get("per_type") or {}
    if rows:
        print(f"{'label':<20} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}")
        for lab, s in rows.items():
            print(f"{lab:<20} {s['precision']:>9.4f} {s['recall']:>9.4f} {s['f1']:>9.4f} {s['support']:>8}")


@app.command()
def predict(
    run: str = typer.Argument(..., help="Run folder (or its model/ folder)."),
    texts: list[str] | None = typer.Argument(None, help="Texts to predict on (questions, for extract)."),
    pair: list[str] | None = Opt(None, "--pair", help="The second text of each inline text (its context, for "
                                                      "extract); repeat once per text."),
    input_file: str | None = Opt(None, "--input", help="File of texts (jsonl, csv, tsv, json, parquet, txt)."),
    output: str | None = Opt(None, "--output", help="Write predictions here as JSON lines."),
    text_column: str | None = Opt(None, "--text-column"),
    text_pair_column: str | None = Opt(None, "--text-pair-column"),
    batch_size: int = Opt(256, "--batch-size", min=1, help="Most texts per batch (batches also hold a token budget)."),
    precision: str | None = Opt(None, "--precision", help="fp32, bf16, int8 or fastest [default: fp32; an ONNX "
                                                            "export: its int8 model when it has one]."),
    abstain_below: float | None = Opt(None, "--abstain-below",
                                      help="classify: label 'unsure' when the top (calibrated) probability is below this."),
    quiet: bool = Opt(False, "--quiet", "-q"),
    as_json: bool = Opt(False, "--json", help="Print a JSON array of {label, probabilities}."),
):
    """Predict labels and (calibrated) probabilities for texts given inline or in a file."""
    _setup(quiet or as_json)
    from . import api

    if abstain_below is not None and not 0 < abstain_below <= 1:
        raise UserError(f"--abstain-below {abstain_below}: expected a probability in (0, 1].")

    if texts and input_file:
        raise UserError("give texts on the command line or --input FILE, not both.")
    if not texts and not input_file:
        raise UserError("nothing to predict: give texts, or --input FILE.")
    if output and Path(output).suffix.lower() not in (".jsonl", ".ndjson"):
        raise UserError(f"--output {output}: expected a .jsonl file.")
    if input_file:
        preds = api.predict_file(run, input_file, text_column, text_pair_column, batch_size, precision,
                                 abstain_below)
        shown = None
    else:
        preds = api.load(run, precision=precision).predict(texts, pair or None, batch_size=batch_size,
                                                           abstain_below=abstain_below)
        shown = texts
    if not _main_process():  # under a launcher every process predicted its share; one writes
        return
    if output:
        def write(tmp):
            with open(tmp, "w", encoding="utf-8") as f:
                for p in preds:
                    f.write(json.dumps(p) + "\n")

        atomic_write(output, write)
        if not as_json and not quiet:
            print(f"wrote {len(preds)} predictions to {output}", file=sys.stderr)
    if as_json:
        print(json.dumps(preds))
    elif not output:
        for i, p in enumerate(preds):
            head = f"{shown[i]!r}: " if shown else ""
            print(f"{head}{_describe(p)}")


def _describe(p: dict) -> str:
    """One prediction as a line of text, whatever the task."""
    if "label" in p:
        probs = "  ".join(f"{k}={v:.3f}" for k, v in p["probabilities"].items())
        return f"{p['label']}  ({probs})"
    if "labels" in p:
        return ", ".join(p["labels"]) or "(no label)"
    if "value" in p:
        return f"{p['value']:.4f}"
    if "values" in p:
        return "  ".join(f"{k}={v:.4f}" for k, v in p["values"].items())
    if "entities" in p:
        return "  ".join(f"[{e['text']}]({e['type']})" for e in p["entities"]) or "(no entity)"
    if "answer" in p:
        return f"{p['answer']!r} (characters {p['start']}-{p['end']})"
    return json.dumps(p)


EMBED_FORMATS = (".npy", ".parquet", ".jsonl")


@app.command()
def embed(
    model: str = Opt("default", "--model", help="Encoder ('default', a folder, a hub id) or a trained run folder."),
    input_file: str = Opt(..., "--input", help="File of texts (jsonl, csv, tsv, json, parquet, txt)."),
    output: str = Opt(..., "--output", help="Where to write vectors: .npy, .parquet or .jsonl."),
    text_column: str | None = Opt(None, "--text-column"),
    text_pair_column: str | None = Opt(None, "--text-pair-column"),
    layer: int | None = Opt(None, "--layer", help="0 = embeddings, -1 = last [default: the model's]."),
    pooling: str | None = Opt(None, "--pooling", help="cls, mean, max or last [default: the model's]."),
    max_length: int | None = Opt(None, "--max-length", min=8),
    batch_size: int = Opt(256, "--batch-size", min=1, help="Most texts per batch (batches also hold a token budget)."),
    quiet: bool = Opt(False, "--quiet", "-q"),
):
    """Write pooled sequence representations of every text."""
    _setup(quiet)
    from . import api
    from .data import load_texts

    suffix = Path(output).suffix.lower()
    if suffix not in EMBED_FORMATS:
        raise UserError(f"--output {output}: unknown format; expected one of {', '.join(EMBED_FORMATS)}.")
    ex = load_texts(input_file, text_column, text_pair_column)
    vectors = api.embed(model, ex, layer=layer, pooling=pooling, max_length=max_length, batch_size=batch_size)
    if not _main_process():  # under a launcher every process embedded its share; one writes
        return

    def write(tmp):
        import numpy as np

        if suffix == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, vectors, allow_pickle=False)
        elif suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.table({"text": ex.texts, "embedding": list(vectors)}), tmp)
        else:
            with open(tmp, "w", encoding="utf-8") as f:
                for t, v in zip(ex.texts, vectors, strict=False):
                    f.write(json.dumps({"text": t, "embedding": [round(float(x), 7) for x in v]}) + "\n")

    atomic_write(output, write)
    if not quiet:
        print(f"wrote {vectors.shape[0]} x {vectors.shape[1]} vectors to {output}", file=sys.stderr)


@app.command()
def serve(
    folders: list[str] = typer.Argument(..., help="Model folders (run, model/, HF classifier or ONNX export); "
                                                   "NAME=FOLDER names one. /predict uses the first."),
    host: str = Opt("127.0.0.1", "--host", help="Address to bind (127.0.0.1: this machine only)."),
    port: int = Opt(8000, "--port", min=0, max=65535),
    token: str | None = Opt(None, "--token", envvar="ENCTUNE_TOKEN", show_envvar=True,
                            help="Require 'Authorization: Bearer TOKEN' on /predict, /info and /models."),
    precision: str | None = Opt(None, "--precision", help="fp32, bf16, int8 or fastest [default: fp32; an ONNX "
                                                            "export: its int8 model when it has one]."),
    max_texts: int = Opt(256, "--max-texts", min=1, help="Most texts in one request."),
    max_chars: int = Opt(10_000, "--max-chars", min=1, help="Most characters in one text."),
    max_body_bytes: int = Opt(1 << 20, "--max-body-bytes", min=64, help="Largest request body."),
    max_batch: int = Opt(64, "--max-batch", min=1, help="Most texts in one model call across requests."),
    wait_ms: float = Opt(5.0, "--wait-ms", min=0, help="How long a request waits for others to batch with."),
    quiet: bool = Opt(False, "--quiet", "-q", help="No access log."),
):
    """Serve model folders over HTTP: POST /predict, GET /health, /ready, /info, /docs."""
    from . import progress
    from .serve.loading import is_onnx_folder, require

    require(("fastapi", "uvicorn"), "enctune serve")
    from .serve.server import Limits, build_app, load_models, parse_specs

    if all(is_onnx_folder(f) for _, f in parse_specs(folders)):
        progress.set_quiet(quiet)  # no transformers, no torch on this path
    else:
        _setup(quiet)
    limits = Limits(max_body_bytes=max_body_bytes, max_texts=max_texts, max_chars=max_chars, max_batch=max_batch,
                    wait_ms=wait_ms)
    models = load_models(folders, precision)
    api_app = build_app(models, limits, token or None)
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        print(f"warning: serving on {host} without a token: anyone who can reach it can use it.", file=sys.stderr)
    for m in models:
        progress.info(f"model '{m.name}': {m.predictor.task.name}, {len(m.predictor.labels)} labels, from {m.folder}")
    uvicorn.run(api_app, host=host, port=port, log_level="warning" if quiet else "info", access_log=not quiet)


@app.command()
def export(
    run: str = typer.Argument(..., help="Run folder (or its model/ folder, or a Hugging Face classifier folder)."),
    out: str = Opt(..., "--out", help="Folder to write the export into."),
    fmt: str | None = Opt(None, "--format", help="onnx [default, unless --merge]."),
    merge: bool = Opt(False, "--merge", help="LoRA runs: write a plain model folder with the adapters folded "
                                             "into the encoder weights, instead of an ONNX folder."),
    quantize: str | None = Opt(None, "--quantize", help="int8: also write a dynamically quantised model."),
    check_data: str | None = Opt(None, "--check-data", help="Texts to check the export on [default: the run's "
                                                              "validation file]."),
    max_check: int = Opt(1000, "--max-check", min=1, help="Most texts to check on."),
    quiet: bool = Opt(False, "--quiet", "-q"),
    as_json: bool = Opt(False, "--json", help="Print the check as JSON."),
):
    """Export a model for onnxruntime (no PyTorch needed to run it) and check it against PyTorch; or, with
    --merge, fold a LoRA run's adapters into a plain model folder."""
    _setup(quiet or as_json)
    if merge:
        if fmt is not None or quantize is not None:
            raise UserError("--merge writes a PyTorch model folder; --format and --quantize are for ONNX "
                            "(which folds LoRA adapters by itself): drop one or the other.")
        from .serve.export import export_merged

        check = export_merged(run, out, check_data, max_check)
    else:
        from .serve.loading import require

        require(("onnx", "onnxruntime"), "enctune export")
        from .serve.export import FORMATS, export_onnx

        fmt = fmt or "onnx"
        if fmt not in FORMATS:
            raise UserError(f"--format {fmt}: expected one of {', '.join(FORMATS)}.")
        check = export_onnx(run, out, quantize, check_data, max_check)
    if as_json:
        print(json.dumps({"out": out, "check": check}))
        return
    reference = "the run with adapters" if merge else "PyTorch"
    for precision, c in check.items():
        if "agreement" in c:
            print(f"{precision}: label agreement with {reference} {c['agreement']:.4f} on {c['n']} texts, "
                  f"max probability difference {c['max_probability_difference']:.2e}")
        else:
            print(f"{precision}: max output difference from {reference} {c['max_output_difference']:.2e} "
                  f"on {c['n']} texts")
    print(f"wrote {out}")


@app.command()
def advise(
    data: str = Opt(..., "--data", help="A data file (train) or a folder with train/validation/test files."),
    model: str | None = Opt(None, "--model", help="Encoder: 'default', a local folder or a hub id."),
    budget: str | None = Opt(None, "--budget", help="Time you can spend (90s, 10m, 1h) [default: 20m]."),
    task: str | None = Opt(None, "--task"),
    labels: str | None = Opt(None, "--labels", help="Label descriptions, as for train."),
    validation: str | None = Opt(None, "--validation"),
    text_column: str | None = Opt(None, "--text-column"),
    text_pair_column: str | None = Opt(None, "--text-pair-column"),
    label_column: str | None = Opt(None, "--label-column"),
    max_length: int | None = Opt(None, "--max-length"),
    epochs: int | None = Opt(None, "--epochs"),
    quiet: bool = Opt(False, "--quiet", "-q"),
    as_json: bool = Opt(False, "--json", help="Print the advice as JSON."),
):
    """Recommend a strategy for this data and machine, with reasons and each strategy's time and memory."""
    _setup(quiet or as_json)
    from . import api
    from .config import make_config

    flags = {"data": data, "model": model, "budget": budget, "task": task, "labels": labels,
             "validation": validation, "text_column": text_column, "text_pair_column": text_pair_column,
             "label_column": label_column, "max_length": max_length, "epochs": epochs}
    a = api.advise(make_config(flags))
    if as_json:
        print(json.dumps(a))
        return
    f = a["facts"]
    print(f"recommended: {a['strategy']} ({a['reason']})")
    print(f"data: task {f['task']}, {f['train_examples']} train examples"
          + (f", {f['labels']} labels, smallest class {f['smallest_class']}" if f["labels"] else "")
          + f", {f['mean_tokens']} tokens per text on average (max {f['max_tokens']})")
    print(f"machine: {f['device']}, {f['cores']} thread(s); encoder {f['encoder']} ({f['encoder_params']:,} parameters)")
    if a["ladder"]:
        print(f"with --strategy auto --budget {budget}: tries {', '.join(a['ladder'])} in that order")
    print(f"{'strategy':<10} {'time':>10} {'memory':>10} {'trains':>12}  note")
    for name, e in a["estimates"].items():
        t = e["seconds"]
        when = f"{t:.0f} s" if t < 120 else f"{t / 60:.1f} min"
        print(f"{name:<10} {'~' + when:>10} {'~' + str(e['memory_mb']) + ' MB':>10} {e['trainable_params']:>12,}  "
              f"{e['note']}")


def _main_process() -> bool:
    from .training.distributed import is_main

    return is_main()


WRITE_ERRORS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                errno.EROFS: "read-only file system"}


def _register_analysis() -> None:
    from .cli_analysis import register

    register(app, _setup)


_register_analysis()  # probe, report, suggest, check (cli_analysis.py)


def main(argv: list[str] | None = None) -> int:
    code = _main(argv)
    if code == 0 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from .training.distributed import finish

        finish()  # under a launcher: leave the process group together, not in the interpreter's teardown
    return code


def _main(argv: list[str] | None) -> int:
    try:
        app(args=argv, prog_name="enctune")  # usage errors: Typer prints them and exits with 2
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except UserError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # a full disk, a folder we may not write: the user's to fix, not a bug
        if e.errno not in WRITE_ERRORS:
            raise
        where = f" ({e.filename})" if e.filename else ""
        print(f"error: {WRITE_ERRORS[e.errno]}{where}. Nothing was written there: free some space or choose "
              "another --out/--output, then run again.", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
