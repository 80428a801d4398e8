"""The Python API: ``train``, ``advise``, ``evaluate``, ``predict_file``, ``embed``, ``export``, ``load``.

The command line and the HTTP server are thin shells over these functions. ``train`` runs the
steps of ``enctune.steps`` in order (read and check, resolve the encoder, prepare, choose and
adapt, evaluate, calibrate) and writes the run folder (``record.write``): a failed run leaves
nothing behind. Raises ``UserError`` for every mistake the user can fix.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import progress, record, select, selftrain, steps
from .analysis.layers import choose_layer
from .analysis.suggest import add_labelled
from .calibrate import abstain, ece
from .config import TrainConfig, make_config
from .cv import check_folds, cross_validate
from .data import Columns, Examples, carried_columns, read_inputs, read_table
from .encoders.resolve import file_digest
from .errors import UserError
from .numeric import softmax
from .phases import Phases
from .retrieval import is_beir_folder
from .run_folder import check_out, logs_folder, mark_started
from .search import Searcher, evaluate_retrieval, index, load_embedder
from .serve.export import FORMATS, export_merged, export_onnx
from .serve.loading import require
from .strategies import RunContext
from .strategies.advisor import smallest_class
from .strategies.labels import has_descriptions
from .strategies.ladder import rungs
from .tasks import Prepared
from .tracking import parse_report_to, tracked


@dataclass
class Run:
    path: Path
    metrics: dict
    predictor: object  # serve.predictor.Predictor


def load(path: str | os.PathLike, precision: str | None = None):
    """A predictor from a run folder, its ``model/`` folder, a Hugging Face classifier folder,
    or an ONNX folder written by ``enctune export`` (run with onnxruntime).

    ``precision``: fp32 (exact, the default), bf16, int8 (dynamic quantisation, CPU) or fastest;
    an ONNX folder runs its int8 model by default when it has one.
    """
    from .serve.loading import load as load_folder  # lazy: an ONNX folder loads without torch (~2 s)

    return load_folder(path, precision=precision)


def _where_it_runs() -> tuple[str, str]:
    """(device, words for messages)."""
    import torch  # lazy: torch (~2 s), which the help text never needs

    if torch.cuda.is_available():
        return "cuda", "a GPU"
    return "cpu", f"{max(torch.get_num_threads(), 1)} CPU core(s)"


def _threads() -> int:
    import torch  # lazy: torch (~2 s), which the help text never needs

    return torch.get_num_threads()


def _precision(cfg: TrainConfig, device: str) -> str:
    from .precision import cpu_has_bf16, resolve_precision  # lazy: torch (~2 s)

    precision = resolve_precision(cfg.precision, device)
    if precision == "bf16" and device == "cpu" and cfg.precision == "bf16" and not cpu_has_bf16():
        warnings.warn("--precision bf16 on a CPU without native bf16 (AVX-512 BF16 / AMX): it will be slower than "
                      "fp32.", UserWarning, stacklevel=3)
    return precision


def train(config: TrainConfig | None = None, config_file: str | None = None, **flags) -> Run:
    """Adapt an encoder to a labelled data set and write a run folder: read and check the data, choose the
    strategy, adapt, evaluate, calibrate, write ``out`` in one step. Returns the ``Run`` (its folder, metrics and a
    predictor). Raises ``UserError`` for every mistake the user can fix."""
    phases = Phases()
    with phases("imports"):
        from . import distributed  # lazy: torch (~2 s); `import enctune.api` and the help text never need it
        from .model import TaskModel  # lazy: torch (~2 s)
        from .serve.predictor import Predictor  # lazy: torch (~2 s)
        from .training.checkpoint import Checkpointer  # lazy: torch (~2 s)
        from .training.seed import seed_all  # lazy: torch (~2 s)

    cfg = config if config is not None else make_config(flags, config_file, source="python")
    t_start = time.perf_counter()
    rank, world = distributed.init()  # under torchrun / accelerate launch: join the group; quiet non-main
    out = Path(cfg.out)
    check_out(out, clean=rank == 0, overwrite=cfg.overwrite, resume=cfg.resume)
    trackers = parse_report_to(cfg.report_to) if rank == 0 else []  # a missing package fails before the work
    seed_all(cfg.seed)

    with phases("read"):
        splits = steps.read(cfg)
        added = None
        if cfg.add:
            splits, added = add_labelled(splits, cfg.add)
        task = splits.task
        if cfg.cv:
            check_folds(cfg.cv, task.stratify_key(splits.train))
        pool = selftrain.read_pool(cfg, task, splits.columns) if cfg.unlabelled else None
    with phases("load"):
        encoder = steps.load_encoder(cfg, task)
        device, where = _where_it_runs()
        precision = _precision(cfg, device)
    with phases("tokenize"):
        prepared = steps.prepare(task, encoder, splits, cfg.class_weights)
    with phases("choose"):
        # the advisor weighs times and counts only when it chooses: then the rate is measured and the network's
        # skeleton built (a named strategy skips both)
        facts = steps.cost_facts(cfg, task, encoder, prepared, precision if cfg.strategy == "auto" else None)
        choice = steps.choose(cfg, splits, facts, where)
        selection = None
        if cfg.strategy == "auto" and choice.strategy != "auto" and select.applies(task, splits, cfg):
            name, changes, reason, selection = select.select_by_cv(
                RunContext(cfg, encoder, task, splits, prepared, precision), choice.estimates, choice.budget)
            choice = dataclasses.replace(choice, strategy=name, reason=reason)
            cfg = cfg.model_copy(update=changes)
    labels_note = f"{len(task.labels)} labels; " if task.labels else ""
    progress.info(f"task {task.name} ({splits.task_reason}): {labels_note}train {len(splits.train)}, validation "
                  f"{len(splits.validation)}{' (carved from train)' if splits.validation_carved else ''}"
                  f"{f', test {len(splits.test)}' if splits.test is not None else ''}")
    layer_choice = None
    if cfg.layer == "best":
        with phases("choose"):
            encoder.layer, layer_choice = choose_layer(encoder, splits, {k: p.tokens for k, p in prepared.items()},
                                                   {k: p.targets for k, p in prepared.items()}, precision)
        progress.info(f"layer {encoder.layer}: the best validation score of a linear probe on each layer")
    progress.info(f"encoder {cfg.model} ({encoder.pooling} pooling, max length {encoder.max_length}, "
                  f"{precision}); strategy {choice.strategy}: {choice.reason}")

    checkpoints = None
    if cfg.checkpoint_every or cfg.resume:
        if rank == 0 and not cfg.resume:
            mark_started(out)  # a killed run leaves a folder that a later --resume may continue in
        checkpoints = Checkpointer(out / "checkpoints", cfg.checkpoint_every, cfg.resume,
                                   _resume_settings(cfg, splits.files, choice.strategy))
    if not cfg.resume and (out / "checkpoints").is_dir() and any((out / "checkpoints").glob("step-*")):
        progress.info(f"{out / 'checkpoints'} holds a checkpoint of an unfinished run; starting afresh "
                      "(pass --resume to continue it instead).")
    if trackers:
        progress.info(f"tracking with {', '.join(trackers)}" + (f"; TensorBoard logs go to {out / 'logs'}"
                                                              if "tensorboard" in trackers else ""))
    with tracked(trackers, logs_folder(out), out.name, cfg.model_dump()) as tracking:
        outcome = steps.repeated(RunContext(cfg, encoder, task, splits, prepared, precision, checkpoints,
                                            log=tracking.log if tracking else None), choice, cfg.repeats,
                                 phases)
        self_training = None
        if pool is not None:
            with phases("self_training"):
                outcome, self_training = selftrain.self_train(outcome, pool, cfg.self_training_rounds, where)
        adapted, evaluation, splits, task = outcome.adapted, outcome.evaluation, outcome.ctx.splits, outcome.ctx.task
        prepared = outcome.ctx.prepared
        result = adapted.result
        encoder = result.encoder or outcome.ctx.encoder
        with phases("calibrate"):
            calibration = steps.calibrate(task, evaluation, prepared, cfg.calibrate)
        cv = None
        if cfg.cv:
            with phases("cv"):
                cv = cross_validate(cfg, splits, adapted.strategy, encoder.layer, precision)

        meta = record.model_meta(cfg, splits, encoder, adapted.strategy, calibration)
        costs = {"wall_seconds": round(time.perf_counter() - t_start, 2), "precision": precision, "device": device,
                 "processes": world}
        metrics = record.run_metrics(splits, prepared, choice, adapted, evaluation, costs,
                                     {"calibration": calibration, "cv": cv, "layer_choice": layer_choice,
                                      "added": added, "repeats": outcome.repeats, "strategy_table": selection,
                                      "self_training": self_training})
        if tracking is not None:
            tracking.close(evaluation.scores)
        if rank == 0:  # one writer; the others wait until the run folder is in place
            config = record.used_config(outcome.ctx.cfg, splits, adapted, encoder, precision)
            record.write(out, cfg, splits, prepared, adapted, evaluation, encoder, meta, metrics, config,
                         {"logs": logs_folder(out)} if tracking is not None else None, phases=phases)
    distributed.barrier()
    predictor = Predictor(TaskModel(encoder, result.head, task.level), encoder, task, meta, precision="fp32")
    return Run(out, metrics, predictor)


def distill(teacher: str | os.PathLike, out: str | os.PathLike, unlabelled: str | None = None,
            layers: int | None = None, **settings) -> Run:
    """A student with ``layers`` of the run ``teacher``'s blocks taught its outputs; its run at ``out``
    (``enctune.distillation``)."""
    from . import distillation  # lazy: torch (~2 s), for `enctune distill` alone

    path, metrics = distillation.distill(str(teacher), str(out), unlabelled, layers, **settings)
    return Run(path, metrics, load(path))


def pretrain(model: str, data: str | os.PathLike, out: str | os.PathLike, objective: str = "auto", **settings) -> dict:
    """Continued pre-training of ``model`` on ``data``'s texts into the encoder folder ``out``; returns its report
    (``enctune.pretraining``)."""
    from . import pretraining  # lazy: torch (~2 s), for `enctune pretrain` alone

    return pretraining.pretrain(model, str(data), str(out), objective, **settings)[1]


def _resume_settings(cfg: TrainConfig, files: dict[str, str], strategy: str) -> dict:
    """What a checkpoint must agree with to be resumed: every setting that changes what is trained, with
    paths made absolute (the same file named two ways is the same file), and a digest of every data file's
    contents (a file changed under the same name is other data)."""
    settings = {k: v for k, v in cfg.model_dump().items() if k not in ("resume", "checkpoint_every", "overwrite")}
    for key in ("data", "validation", "test", "add", "unlabelled", "out", "model"):
        value = settings.get(key)
        if value is not None and (key != "model" or Path(value).exists()):
            settings[key] = str(Path(value).resolve())
    files = {**files, **({"add": cfg.add} if cfg.add else {})}
    return {**settings, "strategy": strategy,
            "data_digests": {split: file_digest(f) for split, f in sorted(files.items())}}


def advise(config: TrainConfig | None = None, config_file: str | None = None, **flags) -> dict:
    """The strategy the advisor recommends for this data, encoder and machine, with its reasons, the
    facts it weighed, and an estimate of time and memory for every strategy. Nothing trains."""

    cfg = config if config is not None else make_config(flags, config_file, source="python")
    splits = steps.read(cfg)
    task = splits.task
    encoder = steps.load_encoder(cfg, task)
    prepared = steps.prepare(task, encoder, splits)
    device, where = _where_it_runs()
    facts = steps.cost_facts(cfg, task, encoder, prepared, _precision(cfg, device))
    choice = steps.choose(cfg.model_copy(update={"strategy": "auto"}), splits, facts, where, ladder=False)
    lengths = prepared["train"].tokens.lengths()
    summary = {
        "task": task.name, "labels": len(task.labels), "train_examples": len(splits.train),
        "smallest_class": smallest_class(task, splits.train),
        "mean_tokens": round(float(lengths.mean()), 1), "max_tokens": int(lengths.max()),
        "encoder": cfg.model, "encoder_params": facts.params, "device": device, "cores": _threads(),
        "train_tokens_per_second": round(facts.rate()), "rate_measured": facts.measured_rate is not None,
        "budget_seconds": steps.budget_seconds(cfg.budget) if cfg.budget else None,
        "labels_in_words": bool(task.labels) and has_descriptions(task, cfg.labels),
    }
    ctx = RunContext(cfg, encoder, task, splits, prepared, "fp32")
    reason = choice.reason
    if cfg.budget is None and select.applies(task, splits, cfg):
        reason += ("; on so few examples `enctune train` (auto) cross-validates every candidate instead and keeps "
                   "the best: " + ", ".join(select.candidate_name(n, c) for n, c in select.candidates(ctx)))
    return {"strategy": choice.strategy, "reason": reason, "facts": summary,
            "ladder": rungs(ctx) if cfg.budget is not None else None,
            "not_applicable": choice.not_applicable,
            "estimates": {k: {"seconds": round(e.seconds, 1), "memory_mb": round(e.memory_mb),
                              "trainable_params": e.trainable_params, "note": e.note}
                          for k, e in choice.estimates.items()}}


def evaluate(path: str | os.PathLike, data: str | os.PathLike, text_column: str | None = None,
             pair_column: str | None = None, label_column: str | None = None, batch_size: int = 256,
             rerank: str | None = None, rerank_k: int = 20) -> dict:
    """Metrics of a trained model on a labelled file (the run's own column names are used when the file has
    them); a task with calibrated probabilities also gets their ECE. On a retrieval folder (corpus.jsonl,
    queries.jsonl, qrels/), ``path`` may be any encoder (a run folder or a pre-trained name): its test queries
    (else its only judged split's) rank the whole corpus."""
    if is_beir_folder(data):
        return evaluate_retrieval(path, data, batch_size, rerank=rerank, rerank_k=rerank_k)
    if rerank is not None:
        raise UserError("--rerank: for retrieval folders (corpus.jsonl, queries.jsonl, qrels/).")
    predictor = load(path)
    if not hasattr(predictor, "outputs"):
        raise UserError(f"{path}: an ONNX export predicts but does not evaluate: evaluate the run folder it came "
                        "from.")
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
    if task.calibrates:  # of the probabilities predict returns (calibrated when the run was)

        metrics["ece"] = round(ece(softmax(outputs), np.asarray(prepared.targets)), 6)
    return {"n": len(ex), "task": task.name, **metrics}


__all__ = ["Run", "Searcher", "advise", "embed", "evaluate", "evaluate_retrieval", "export", "index", "load",
           "predict_file", "train"]


def _present(table, name: str | None) -> str | None:
    return name if name and name in table.columns else None


def predict_file(path: str | os.PathLike, input_file: str | os.PathLike, text_column: str | None = None,
                 pair_column: str | None = None, batch_size: int = 256, precision: str | None = None,
                 abstain_below: float | None = None, include_text: bool = False) -> list[dict]:
    """One row per row of ``input_file``, in order: its other columns (an id, metadata; the text too with
    ``include_text``) and the prediction. The text is read from the run's own text (and pair) columns when the
    file has them, else from the columns named, else by the usual names. Under a launcher each process
    predicts its share."""
    from . import distributed  # lazy: torch (~2 s); an ONNX folder predicts without it

    distributed.init()
    predictor = load(path, precision=precision)
    task = predictor.task
    run_columns = Columns(**{k: predictor.meta.get("columns", {}).get(k) for k in ("text", "pair", "label")})
    onnx = not hasattr(predictor, "outputs")  # an ONNX export: sequence-level, texts in, logits out
    ex, used = read_inputs(input_file, text_column, pair_column, None if onnx else task, run_columns)
    with progress.bar("predict", total=len(ex)) as pbar:
        if onnx:
            logits = distributed.gather_rows(len(ex), lambda idx: predictor.logits(
                [ex.texts[i] for i in idx], [ex.pairs[i] for i in idx] if ex.pairs is not None else None,
                batch_size, progress=pbar))
            preds = task.decode(logits)
        else:
            prepared = task.prepare(predictor.encoder, ex)
            outputs = distributed.gather_rows(len(prepared), lambda idx: predictor.outputs(
                Prepared(prepared.tokens.subset(idx)), batch_size, progress=pbar))
            preds = task.decode_outputs(outputs, prepared, ex)
    preds = abstain(preds, abstain_below)
    taken = tuple({k for p in preds for k in p})
    return [{**carried, **p} for carried, p in zip(carried_columns(ex, used, include_text, taken), preds,
                                                       strict=True)]


def embed(model: str, texts: list[str] | Examples, layer: int | None = None, pooling: str | None = None,
          max_length: int | None = None, batch_size: int = 256, precision: str = "fp32") -> np.ndarray:
    """Pooled representations (N, H) from a pre-trained encoder name/folder or a trained run folder."""
    from . import distributed  # lazy: torch (~2 s); `import enctune.api` and the help text never need it
    from .precision import resolve_precision  # lazy: torch (~2 s)
    from .serve.predictor import embed as embed_texts  # lazy: torch (~2 s)

    if isinstance(texts, str):
        texts = [texts]
    ex = texts if isinstance(texts, Examples) else Examples(list(texts), None, None)
    embedder = load_embedder(model, pooling, max_length)
    encoder = embedder.encoder
    distributed.init()
    if embedder.predictor is not None and layer is None and pooling is None:  # a retrieve run: its embedding
        with progress.bar("embed", total=len(ex)) as pbar:
            return distributed.gather_rows(len(ex), lambda idx: embedder.predictor.logits(
                [ex.texts[i] for i in idx], None, batch_size, progress=pbar))
    with progress.bar("embed", total=len(ex)) as pbar:  # under a launcher: each process its share
        return distributed.gather_rows(len(ex), lambda idx: embed_texts(
            encoder, [ex.texts[i] for i in idx], [ex.pairs[i] for i in idx] if ex.pairs is not None else None,
            layer, pooling, batch_size, resolve_precision(precision), progress=pbar))


def export(run: str | os.PathLike, out: str | os.PathLike, fmt: str = "onnx", quantize: str | None = None,
           merge: bool = False, check_data: str | None = None, max_check: int = 1000) -> dict:
    """Export a run for onnxruntime (``fmt`` onnx, optionally also an int8 model) and check it against PyTorch;
    or, with ``merge``, write a plain model folder with a LoRA run's adapters folded into the encoder.
    Returns the check ({precision: {n, agreement, max_probability_difference, ...}})."""
    if merge:
        if quantize is not None:
            raise UserError("--merge writes a PyTorch model folder; --quantize is for ONNX (which folds LoRA "
                            "adapters by itself): drop one or the other.")

        return export_merged(str(run), str(out), check_data, max_check)

    require(("onnx", "onnxruntime"), "enctune export")
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: expected one of {', '.join(FORMATS)}.")
    return export_onnx(str(run), str(out), quantize, check_data, max_check)


def _keywords(fn, returns: str) -> None:
    """Give ``fn(config=None, config_file=None, **flags)`` the signature and docstring of its keyword arguments,
    one per ``TrainConfig`` field (the same names, types, defaults and help as the command line's flags), so
    that help(), IDEs that read signatures, and the "did you mean" of a misspelt keyword all follow the config."""
    params = [inspect.Parameter("config", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                                annotation="TrainConfig | None"),
              inspect.Parameter("config_file", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                                annotation="str | None")]
    lines = []
    for name, info in TrainConfig.model_fields.items():
        default = inspect.Parameter.empty if info.is_required() else info.default
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=info.annotation))
        shown = "required" if info.is_required() else repr(info.default)
        lines.append(f"    {name} ({shown}): {info.description}")
    fn.__signature__ = inspect.Signature(params, return_annotation=returns)
    fn.__doc__ = f"{fn.__doc__}\n\nKeyword arguments (a config file's keys and the command line's flags too):\n\n" \
                 + "\n".join(lines)


_keywords(train, "Run")
_keywords(advise, "dict")

