"""The Python API: ``train``, ``evaluate``, ``load``, ``embed``. The CLI is a thin shell over it.

``train`` runs read -> check -> encode -> adapt -> evaluate -> save:

1. read and check the data (``data.load_splits``), with row-level errors;
2. load the encoder (base model, no pre-training head) and tokenize every split;
3. pick the strategy (``--strategy``, or the advisor's rule) and run it through the loop;
4. evaluate on validation and test;
5. write the run folder (``model/``, ``metrics.json``, ``config.json``) to a temporary
   folder and rename it into place: a failed run leaves nothing behind.

Raises ``UserError`` for every mistake the user can fix.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import __version__, progress
from .config import TrainConfig, budget_seconds, make_config
from .data import Examples, load_splits, load_texts
from .encoders import Encoder
from .encoders.cache import texts_hash
from .encoders.resolve import refuse_lora_run
from .errors import UserError
from .model import TaskModel
from .model_folder import find_model_folder, write_model_folder
from .run_folder import check_out, mark_started, write_run
from .serve.predictor import Predictor
from .serve.predictor import embed as _embed
from .strategies import STRATEGIES, RunContext, choose_strategy, split_outputs
from .tasks import TASKS, Prepared
from .training import distributed
from .training.checkpoint import Checkpointer
from .training.precision import resolve_precision


@dataclass
class Run:
    path: Path
    metrics: dict
    predictor: Predictor


def load(path: str | os.PathLike, precision: str | None = None) -> Predictor:
    """A predictor from a run folder, its ``model/`` folder, a Hugging Face classifier folder,
    or an ONNX folder written by ``enctune export`` (run with onnxruntime).

    ``precision``: fp32 (exact, the default), bf16, int8 (dynamic quantisation, CPU) or fastest;
    an ONNX folder runs its int8 model by default when it has one.
    """
    from .serve.loading import load as _load

    return _load(path, precision=precision)


def _resume_settings(cfg: TrainConfig, files: dict[str, str], strategy: str) -> dict:
    """What a checkpoint must agree with to be resumed: every setting that changes what is trained, with
    paths made absolute (the same file named two ways is the same file), and a digest of every data file's
    contents (a file changed under the same name is other data)."""
    from .training.checkpoint import file_digest

    settings = {k: v for k, v in cfg.model_dump().items() if k not in ("resume", "checkpoint_every", "quiet")}
    for key in ("data", "validation", "test", "add", "out", "model"):
        value = settings.get(key)
        if value is not None and (key != "model" or Path(value).exists()):
            settings[key] = str(Path(value).resolve())
    files = {**files, **({"add": cfg.add} if cfg.add else {})}
    return {**settings, "strategy": strategy,
            "data_digests": {split: file_digest(f) for split, f in sorted(files.items())}}


def _task_options(cfg: TrainConfig) -> dict:
    """What the task is built with beyond its labels (the rest of its state is fitted on train)."""
    opts = {"pair_mode": cfg.pair_mode}
    for k in ("label_delimiter", "at_least_one", "max_answer_length", "doc_stride"):
        v = getattr(cfg, k)
        if v is not None:
            opts[k] = v
    return opts


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def train(config: TrainConfig | None = None, config_file: str | None = None, **flags) -> Run:
    """Adapt an encoder to a labelled data set and write a run folder. See the module docstring."""
    cfg = config if config is not None else make_config(flags, config_file)
    t_start = time.perf_counter()
    rank, world = distributed.init()  # under torchrun / accelerate launch: join the group; quiet non-main
    out = Path(cfg.out)
    check_out(out, clean=rank == 0)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)

    splits = load_splits(cfg.data, cfg.validation, cfg.test, cfg.text_column, cfg.text_pair_column,
                         cfg.label_column, cfg.validation_fraction, cfg.seed, cfg.task, _task_options(cfg))
    added = None
    if cfg.add:
        from .analysis.suggest import add_labelled

        splits, added = add_labelled(splits, cfg.add)
    task = splits.task
    if cfg.cv:
        from .cv import check_folds

        check_folds(cfg.cv, task.stratify_key(splits.train))
    refuse_lora_run(cfg.model)
    if cfg.trust_remote_code:
        warnings.warn("--trust-remote-code: the encoder's own code runs in this training run; the model folder "
                      "it writes keeps that code, which enctune's predict, evaluate, serve and export never run, "
                      "so they will refuse the folder.", UserWarning, stacklevel=2)
    # lazy: a probe whose features are all cached never needs the network, only its tokenizer and config
    encoder = Encoder.load(cfg.model, pooling=cfg.pooling, max_length=cfg.max_length,
                           layer=-1 if cfg.layer == "best" else cfg.layer, trust_remote_code=cfg.trust_remote_code,
                           allow_pickle=cfg.allow_pickle, lazy=True)
    if task.level == "token":
        encoder.tokenizer.padding_side = "right"  # per-token targets are laid out from the left
    device = "cuda" if torch.cuda.is_available() else "cpu"
    precision = resolve_precision(cfg.precision, device)
    if precision == "bf16" and device == "cpu" and cfg.precision == "bf16":
        from .training.precision import cpu_has_bf16

        if not cpu_has_bf16():
            warnings.warn("--precision bf16 on a CPU without native bf16 (AVX-512 BF16 / AMX): it will be slower "
                          "than fp32.", UserWarning, stacklevel=2)

    named = {"train": splits.train, "validation": splits.validation, "test": splits.test}
    prepared = {k: task.prepare(encoder, ex) for k, ex in named.items() if ex is not None}
    truncated = {k: p.tokens.truncated for k, p in prepared.items()}
    if any(truncated.values()):
        warnings.warn("texts cut at --max-length " + str(encoder.max_length) + " tokens: " +
                      ", ".join(f"{k} {v}" for k, v in truncated.items() if v), UserWarning, stacklevel=2)

    if cfg.class_weights == "balanced":
        if not hasattr(task, "balanced_weights"):
            raise UserError(f"--class-weights balanced: only for classify, not for the '{task.name}' task.")
        task.class_weights = task.balanced_weights(prepared["train"].targets, len(task.labels))

    strategy_name, reason = cfg.strategy, "chosen with --strategy"
    budget = budget_seconds(cfg.budget) if cfg.budget else None
    est = _estimates(cfg, task, encoder, prepared)
    if strategy_name == "auto" and budget is None:
        n_params = encoder.num_params()
        strategy_name, reason = choose_strategy(task, splits.train, int(prepared["train"].tokens.lengths().sum()),
                                                n_params, cfg.epochs or STRATEGIES["full"].epochs, est=est)
    labels_note = f"{len(task.labels)} labels; " if task.labels else ""
    progress.info(f"task {task.name} ({splits.task_reason}): {labels_note}train {len(splits.train)}, validation "
                  f"{len(splits.validation)}{' (carved from train)' if splits.validation_carved else ''}"
                  f"{f', test {len(splits.test)}' if splits.test is not None else ''}")
    layer_choice = None
    if cfg.layer == "best":
        from .analysis.layers import choose_layer

        encoder.layer, layer_choice = choose_layer(encoder, splits, {k: p.tokens for k, p in prepared.items()},
                                                   {k: p.targets for k, p in prepared.items()}, precision)
        progress.info(f"layer {encoder.layer}: the best validation score of a linear probe on each layer")
    progress.info(f"encoder {cfg.model} ({encoder.pooling} pooling, max length {encoder.max_length}, "
                  f"{precision}); strategy {strategy_name}"
                  + (f" (a ladder within {cfg.budget})" if budget is not None and strategy_name == "auto"
                     else f": {reason}"))

    checkpoints = None
    if cfg.checkpoint_every or cfg.resume:
        if rank == 0 and not cfg.resume:
            mark_started(out)  # a killed run leaves a folder that a later --resume may continue in
        checkpoints = Checkpointer(out / "checkpoints", cfg.checkpoint_every, cfg.resume,
                                   _resume_settings(cfg, splits.files, strategy_name))
    if not cfg.resume and (out / "checkpoints").is_dir() and any((out / "checkpoints").glob("step-*")):
        progress.info(f"{out / 'checkpoints'} holds a checkpoint of an unfinished run; starting afresh "
                      "(pass --resume to continue it instead).")
    ctx = RunContext(cfg, encoder, task, splits, prepared, precision, checkpoints)
    strategy_table = None
    if budget is not None and strategy_name == "auto":
        from .strategies.ladder import run_ladder

        result, strategy_name, reason, strategy_table = run_ladder(ctx, budget, est)
        progress.info(f"strategy {strategy_name}: {reason}")
    else:
        if budget is not None:  # one strategy under a time limit: training stops at the deadline
            ctx.deadline = time.monotonic() + budget
        result = STRATEGIES[strategy_name]().run(ctx)
    encoder = result.encoder or encoder
    _head_kind(task, result.head)

    model = TaskModel(encoder, result.head, task.level)
    outputs = {split: split_outputs(result, ctx, split) for split in ("validation", "test") if named[split] is not None}
    fitted = task.after_fit(outputs["validation"], prepared["validation"], named["validation"])
    scores = {split: task.evaluate_outputs(out, prepared[split], named[split]) for split, out in outputs.items()}
    predictor = Predictor(model, encoder, task, {}, precision="fp32")
    calibration = None
    if task.name == "classify" and cfg.calibrate:
        from .calibrate import calibration_report, fit_temperature

        temperature = fit_temperature(outputs["validation"], prepared["validation"].targets.numpy())
        calibration = calibration_report(temperature, outputs, {k: prepared[k].targets.numpy() for k in outputs})
    cv = None
    if cfg.cv:
        from .cv import cross_validate

        cv = cross_validate(cfg, splits, strategy_name, encoder.layer, precision)

    wall = time.perf_counter() - t_start
    loop = result.loop
    meta = {
        **task.config(),
        "level": task.level, "pooling": encoder.pooling, "layer": encoder.layer, "max_length": encoder.max_length,
        "dropout": cfg.dropout, "strategy": strategy_name, "base_model": cfg.model,
        "columns": {"text": splits.columns.text, "pair": splits.columns.pair, "label": splits.columns.label},
        "enctune_version": __version__,
    }
    if calibration is not None:
        meta["temperature"] = calibration["temperature"]
    if getattr(encoder, "template", None) is not None:  # zeroshot cloze: every text is wrapped before tokenizing
        meta["template"] = encoder.template
    predictor.meta = meta
    metrics = {
        "task": task.name, "task_reason": splits.task_reason, "strategy": strategy_name, "strategy_reason": reason,
        "primary_metric": task.primary_metric, **({"fitted_on_validation": fitted} if fitted else {}),
        "validation": scores.get("validation"), "test": scores.get("test"),
        "history": loop.history,
        "loss_curve": loop.losses,
        "costs": {
            "wall_seconds": round(wall, 2), "train_seconds": round(loop.seconds, 2),
            "eval_seconds": round(loop.eval_seconds, 2),
            "train_examples_per_second": round(loop.examples / max(loop.seconds - loop.eval_seconds, 1e-9), 1),
            "train_examples_seen": loop.examples, "tokens_seen": loop.tokens, "steps": loop.steps,
            "epochs_run": loop.epochs_run, "stopped_early": loop.stopped_early,
            "peak_rss_mb": round(_peak_rss_mb(), 1), "precision": precision, "device": device,
            "threads": torch.get_num_threads(), "processes": world, "resumed_at_step": loop.resumed_at_step,
            "truncated_texts": truncated, **result.costs,
        },
        "data": {
            "files": splits.files, "labels": task.labels, "validation_carved": splits.validation_carved,
            "sizes": {k: len(ex) for k, ex in named.items() if ex is not None},
            "fingerprints": {k: texts_hash(ex.texts, ex.pairs)[:16] for k, ex in named.items() if ex is not None},
        },
        "environment": {"enctune": __version__, "torch": torch.__version__, "python": platform.python_version()},
    }
    if strategy_table is not None:
        metrics["strategy_table"] = strategy_table
    metrics["estimates"] = {k: {"seconds": round(e.seconds, 1), "memory_mb": round(e.memory_mb),
                                "trainable_params": e.trainable_params} for k, e in est.items()}
    for key, value in (("calibration", calibration), ("cv", cv), ("layer_choice", layer_choice),
                       ("added", added)):
        if value is not None:
            metrics[key] = value
    if rank == 0:  # one writer; the others wait until the run folder is in place
        from .analysis.report import confident_mistakes, render_run_report

        mistakes = []
        if task.name == "classify":
            mistakes = confident_mistakes(named, outputs, {k: p.targets for k, p in prepared.items()}, task,
                                          meta.get("temperature"))
        extra = {"mistakes.jsonl": "".join(json.dumps(m) + "\n" for m in mistakes)}
        try:
            extra["report.html"] = render_run_report(out.name, metrics, cfg.model_dump(), mistakes)
        except Exception as e:  # a figure that fails to draw must not cost the user the trained model
            warnings.warn(f"report.html not written ({type(e).__name__}: {e}); the run is complete without it.",
                          UserWarning, stacklevel=2)
        _write_run(out, encoder, result.head, meta, metrics, cfg, result.encoder_trained, extra)
        progress.info(f"wrote {out}")
    distributed.barrier()
    return Run(out, metrics, predictor)


def advise(config: TrainConfig | None = None, config_file: str | None = None, **flags) -> dict:
    """The strategy the advisor recommends for this data, encoder and machine, with its reasons, the
    facts it weighed, and an estimate of time and memory for every strategy. Nothing trains."""
    from .strategies.advisor import smallest_class
    from .strategies.labels import has_descriptions
    from .strategies.ladder import rungs

    cfg = config if config is not None else make_config(flags, config_file)
    splits = load_splits(cfg.data, cfg.validation, cfg.test, cfg.text_column, cfg.text_pair_column,
                         cfg.label_column, cfg.validation_fraction, cfg.seed, cfg.task, _task_options(cfg))
    task = splits.task
    refuse_lora_run(cfg.model)
    encoder = Encoder.load(cfg.model, pooling=cfg.pooling, max_length=cfg.max_length,
                           trust_remote_code=cfg.trust_remote_code, allow_pickle=cfg.allow_pickle, lazy=True)
    named = {"train": splits.train, "validation": splits.validation, "test": splits.test}
    prepared = {k: task.prepare(encoder, ex) for k, ex in named.items() if ex is not None}
    est = _estimates(cfg, task, encoder, prepared)
    n_params = encoder.num_params()
    budget = budget_seconds(cfg.budget) if cfg.budget else None
    lengths = prepared["train"].tokens.lengths()
    name, reason = choose_strategy(task, splits.train, int(lengths.sum()), n_params,
                                   cfg.epochs or STRATEGIES["full"].epochs, budget, est)
    facts = {
        "task": task.name, "labels": len(task.labels), "train_examples": len(splits.train),
        "smallest_class": smallest_class(task, splits.train),
        "mean_tokens": round(float(lengths.mean()), 1), "max_tokens": int(lengths.max()),
        "encoder": cfg.model, "encoder_params": n_params, "device": "cuda" if torch.cuda.is_available() else "cpu",
        "cores": torch.get_num_threads(), "budget_seconds": budget,
        "labels_in_words": bool(task.labels) and has_descriptions(task, cfg.labels),
    }
    ctx = RunContext(cfg, encoder, task, splits, prepared, "fp32")
    return {"strategy": name, "reason": reason, "facts": facts,
            "ladder": rungs(ctx) if budget is not None else None,
            "estimates": {k: {"seconds": round(e.seconds, 1), "memory_mb": round(e.memory_mb),
                              "trainable_params": e.trainable_params, "note": e.note} for k, e in est.items()}}


def _estimates(cfg: TrainConfig, task, encoder: Encoder, prepared: dict) -> dict:
    from .strategies import estimates

    n_train = int(prepared["train"].tokens.lengths().sum())
    n_eval = sum(int(p.tokens.lengths().sum()) for k, p in prepared.items() if k != "train")
    return estimates(task, n_train, n_eval, encoder.num_params(), encoder.num_layers,
                     encoder.hidden_size, cfg.epochs or STRATEGIES["full"].epochs, cfg.unfreeze_layers,
                     len(prepared["train"]))


def _head_kind(task, head) -> None:
    """Record in the task's options whether the saved head is a cosine head (started from label
    descriptions) or a cloze head (zeroshot's, with its settings in options["cloze"]), so that loading
    rebuilds the same module."""
    from .tasks.base import ClozeHead, CosineLinear

    if isinstance(head, ClozeHead):
        task.options["head"] = "cloze"
        return
    task.options.pop("cloze", None)
    if any(isinstance(m, CosineLinear) for m in head.modules()):
        task.options["head"] = "cosine"
    else:
        task.options.pop("head", None)


def _model_card(meta: dict, metrics: dict) -> str:
    lines = [f"# enctune model: {meta['task']}", "",
             f"- base encoder: `{meta['base_model']}` ({meta['pooling']} pooling, max length {meta['max_length']})",
             f"- strategy: `{meta['strategy']}` ({metrics['strategy_reason']})",
             *([f"- labels: {', '.join(str(x) for x in meta['labels'])}"] if meta.get("labels") else [])]
    for split in ("validation", "test"):
        if metrics.get(split):
            lines.append(f"- {split}: {TASKS[meta['task']].from_config(meta).summary(metrics[split])}")
    cal = metrics.get("calibration")
    if cal:
        lines.append(f"- calibration: temperature {cal['temperature']:.4f} fitted on validation"
                     + "".join(f"; {s} ECE {cal[s]['ece_before']:.4f} -> {cal[s]['ece_after']:.4f}"
                               for s in ("validation", "test") if s in cal))
    lines += ["", "Load it with `enctune.load(path)` or `enctune predict path TEXT...`.", ""]
    return "\n".join(lines)


def _write_run(out: Path, encoder, head, meta: dict, metrics: dict, cfg: TrainConfig,
               encoder_trained: bool = True, extra: dict[str, str] | None = None) -> None:
    def write_model(folder: Path) -> None:
        write_model_folder(folder, encoder, head, meta, _model_card(meta, metrics), encoder_trained)

    write_run(out, write_model, {"metrics.json": json.dumps(metrics, indent=2) + "\n",
                                 "config.json": json.dumps(cfg.model_dump(), indent=2) + "\n", **(extra or {})})


def evaluate(path: str | os.PathLike, data: str | os.PathLike, text_column: str | None = None,
             pair_column: str | None = None, label_column: str | None = None, batch_size: int = 256) -> dict:
    """Metrics of a trained model on a labelled file."""
    from .data.readers import read_table

    predictor = load(path)
    task = predictor.task
    cols = predictor.meta.get("columns", {})
    table = read_table(data)
    columns = task.infer_columns(table, text_column or _present(table, cols.get("text")),
                                 pair_column or _present(table, cols.get("pair")),
                                 label_column or _present(table, cols.get("label")))
    ex = task.read(table, columns)
    task.check(ex, columns.label)
    prepared = task.prepare(predictor.encoder, ex)
    with progress.bar("evaluate", total=len(prepared)) as pbar:
        outputs = predictor.outputs(prepared, batch_size, progress=pbar)
    metrics = task.evaluate_outputs(outputs, prepared, ex)
    if task.name == "classify":  # of the probabilities predict returns (calibrated when the run was)
        from .calibrate import ece, softmax

        metrics["ece"] = round(ece(softmax(outputs), prepared.targets.numpy()), 6)
    return {"n": len(ex), "task": task.name, **metrics}


def _present(table, name: str | None) -> str | None:
    return name if name and name in table.columns else None


def predict_file(path: str | os.PathLike, input_file: str | os.PathLike, text_column: str | None = None,
                 pair_column: str | None = None, batch_size: int = 256, precision: str | None = None,
                 abstain_below: float | None = None) -> list[dict]:
    from .calibrate import abstain

    distributed.init()
    predictor = load(path, precision=precision)
    task = predictor.task
    if not hasattr(predictor, "outputs"):  # an ONNX export: sequence classification, texts in, logits out
        ex = load_texts(input_file, text_column, pair_column)
        with progress.bar("predict", total=len(ex)) as pbar:  # under a launcher: each process its share
            logits = distributed.gather_rows(len(ex), lambda idx: predictor.logits(
                [ex.texts[i] for i in idx], [ex.pairs[i] for i in idx] if ex.pairs is not None else None,
                batch_size, progress=pbar))
        return abstain(task.decode(logits), abstain_below)
    ex = load_texts(input_file, text_column, pair_column, task=task)
    prepared = task.prepare(predictor.encoder, ex)
    with progress.bar("predict", total=len(prepared)) as pbar:
        outputs = distributed.gather_rows(len(prepared), lambda idx: predictor.outputs(
            Prepared(prepared.tokens.subset(idx)), batch_size, progress=pbar))
    return abstain(task.decode_outputs(outputs, prepared, ex), abstain_below)


def embed(model: str, texts: list[str] | Examples, layer: int | None = None, pooling: str | None = None,
          max_length: int | None = None, batch_size: int = 256, precision: str = "fp32") -> np.ndarray:
    """Pooled representations (N, H) from a pre-trained encoder name/folder or a trained run folder."""
    if isinstance(texts, str):
        texts = [texts]
    ex = texts if isinstance(texts, Examples) else Examples(list(texts), None, None)
    p = Path(str(model))
    try:
        folder = find_model_folder(p) if p.is_dir() else None
    except UserError:
        folder = None
    if folder is not None:
        pred = load(folder)
        encoder = pred.encoder
    else:
        encoder = Encoder.load(model, pooling=pooling, max_length=max_length)
    distributed.init()
    with progress.bar("embed", total=len(ex)) as pbar:  # under a launcher: each process its share
        return distributed.gather_rows(len(ex), lambda idx: _embed(
            encoder, [ex.texts[i] for i in idx], [ex.pairs[i] for i in idx] if ex.pairs is not None else None,
            layer, pooling, batch_size, resolve_precision(precision), progress=pbar))
