"""Distillation: a smaller, faster student taught by a trained run's model (``enctune distill``).

The student is the teacher's encoder with fewer blocks (``--layers n``: n of them evenly spaced, the top one
kept, ``encoders.shrink``) and the teacher's head, or a smaller encoder folder (``--student``) with a new head.
It learns the teacher's outputs on the run's training texts and on unlabelled ones (``--unlabelled``):

    loss = (1 - a) * soft + a * hard(labelled rows)

``soft`` is what the task's outputs are: for classes, T^2 KL(softmax(t / T) || softmax(s / T)) (Hinton et al.:
the T^2 keeps the gradient's scale as T changes; T = 2 by default shows the student how the teacher ranks the
wrong classes); for label sets, binary cross-entropy against sigmoid(t / T), times T^2; for values, scores and
embeddings, the mean squared error of the outputs. ``hard`` is the task's own loss on the rows that have labels
(their share of the batch), for tasks whose labels are classes, label sets or values. Teacher outputs are
computed once, in fp32, before training.

The student trains through the one loop (keeping its best validation score), is evaluated and calibrated like
any run, and its run folder is a run folder like any other (``enctune predict`` takes it); metrics.json's
``distillation`` holds the teacher's scores, the student's share of them, and both models' prediction speed
on the same texts (``enctune.load(folder).predict(texts)``, best of 2, fp32).
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from . import progress, record, steps
from .config import CoreConfig, TrainConfig
from .data import read_inputs
from .encoders.encoder import Encoder
from .encoders.shrink import keep_layers, layers_to_keep
from .errors import UserError
from .model import TaskModel, batched_logits
from .model_folder import find_model_folder
from .phases import Phases
from .precision import resolve_precision
from .run_folder import check_out
from .serve.predictor import Predictor
from .strategies import STRATEGIES, RunContext, StrategyResult
from .training.batching import LengthBucketSampler
from .training.loop import fit
from .training.seed import seed_all

DEFAULT_TEMPERATURE = 2.0
DEFAULT_HARD_WEIGHT = 0.5
SPEED_TEXTS = 2000  # texts timed for the speed comparison (the test split's first ones)


def run_config(folder: Path, updates: dict) -> TrainConfig:
    """The settings a run folder's config.json records (its core settings: data, columns, task, seed...), with
    ``updates`` on top. Raises UserError when the folder has none (a model folder alone)."""
    path = folder / "config.json"
    if not path.is_file():
        raise UserError(f"{folder}: no config.json, so the data it was trained on is unknown; pass --data.")
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not readable JSON ({e}).") from None
    # the teacher's schedule is not the student's: epochs, rate and batch are distillation's own unless given
    core = {k: v for k, v in saved.items() if k in CoreConfig.model_fields and v is not None
            and k not in ("epochs", "lr", "batch_size")}
    if updates.get("data") is not None:  # other data: its own splits, not the run's
        core = {k: v for k, v in core.items() if k not in ("validation", "test")}
    return TrainConfig.model_validate({**core, **{k: v for k, v in updates.items() if v is not None}})


def distill(teacher: str, out: str, unlabelled: str | None = None, layers: int | None = None,
            student: str | None = None, data: str | None = None, text_column: str | None = None,
            epochs: int | None = None, lr: float | None = None, batch_size: int | None = None,
            temperature: float = DEFAULT_TEMPERATURE, hard_weight: float = DEFAULT_HARD_WEIGHT, seed: int = 42,
            precision: str = "auto", overwrite: bool = False) -> tuple[Path, dict]:
    """Teach a student the outputs of the run folder ``teacher`` and write its run folder at ``out``; returns
    (the folder, its metrics).

    Args:
        teacher: a run folder of a sequence-level task (its config.json names the data, unless ``data``).
        out: the student's run folder.
        unlabelled: a file of texts (any reader; .txt one per line) the teacher labels for the student.
        layers: blocks the student keeps of the teacher's (default: half); ignored with ``student``.
        student: an encoder folder (or name) to start the student from instead, with a new head.
        temperature: T of the soft loss (classes and label sets).
        hard_weight: a, the weight of the labelled rows' own loss.

    Raises:
        UserError: a teacher that is not a sequence-level run, data whose labels differ from the teacher's,
            an ``out`` that may not be written, and every mistake reading the data.
    """
    phases = Phases()
    t_start = time.perf_counter()
    if not 0 <= hard_weight <= 1:
        raise UserError(f"--hard-weight {hard_weight}: expected a number from 0 to 1.")
    if temperature <= 0:
        raise UserError(f"--temperature {temperature}: expected a number above 0.")
    check_out(out, overwrite=overwrite)
    with phases("load"):
        folder = find_model_folder(teacher)
        run_folder = folder.parent if folder.name == "model" else Path(teacher)
        taught = Predictor.load(teacher)
        task = taught.task
        if task.level != "sequence":
            raise UserError(f"{teacher}: a '{task.name}' model labels each token; distil runs whose task gives one "
                            "output per text.")
        cfg = run_config(run_folder, {"data": data, "out": out, "overwrite": overwrite, "model": str(folder / "encoder"),
                                      "strategy": "full", "epochs": epochs, "lr": lr, "batch_size": batch_size,
                                      "seed": seed, "precision": precision, "text_column": text_column})
    seed_all(cfg.seed)
    with phases("read"):
        splits = steps.read(cfg)
        if splits.task.labels != task.labels:
            raise UserError(f"{cfg.data}: its labels ({', '.join(map(str, splits.task.labels[:6]))}) are not the "
                            f"teacher's ({', '.join(map(str, task.labels[:6]))}).")
        splits.task = task  # the teacher's task: its fitted state (thresholds, statistics) is the student's too
        pool = read_inputs(unlabelled, text_column, None, task, prefer=splits.columns)[0] if unlabelled else None

    with phases("load"):
        if student is not None:
            enc = Encoder.load(student, pooling=taught.encoder.pooling, max_length=taught.encoder.max_length)
            head = task.build_head(enc.hidden_size, cfg.dropout)
            kept = None
        else:
            enc = copy.deepcopy(taught.encoder)
            STRATEGIES[taught.meta.get("strategy", "full")].plain_encoder(enc)
            kept = layers_to_keep(enc.num_layers, layers or max(1, enc.num_layers // 2))
            keep_layers(enc.model, kept)
            enc.config, enc.layer = enc.model.config, -1
            head = copy.deepcopy(taught.model.head)
        enc.source = str(folder / "encoder")
        enc.count_truncated = True
    device = "cuda" if torch.cuda.is_available() else "cpu"
    run_precision = resolve_precision(cfg.precision, device)

    with phases("tokenize"):
        prepared = steps.prepare(task, enc, splits)
        single = not task.has_head  # an embedding: each text of a pair is taught on its own
        texts = splits.train.texts + (splits.train.pairs or [] if single else []) + (pool.texts if pool else [])
        pairs = None if single or splits.train.pairs is None else splits.train.pairs + (pool.pairs or [] if pool
                                                                                         else [])
        if pairs is not None and len(pairs) != len(texts):
            raise UserError(f"{unlabelled}: the teacher reads text pairs, and these rows have no second text.")
        apart = task.pair_mode == "bi" and not single
        n_labelled = len(splits.train) if task.label_space in ("classes", "label sets", "values") else 0
    with phases("teach"):
        with progress.bar("teacher outputs", total=len(texts)) as pbar:
            soft = torch.from_numpy(batched_logits(taught.fp32_model, taught.encoder, taught.encoder.tokenize(
                texts, pairs, apart=apart), 256, "fp32", progress=pbar))
        tokens = enc.tokenize(texts, pairs, apart=apart)
    hard = prepared["train"].targets
    loss_fn = soft_loss(task.label_space, soft, hard, n_labelled, temperature, hard_weight, task.loss)

    ctx = RunContext(cfg, enc, task, splits, prepared, run_precision)
    strategy = STRATEGIES["full"]()
    n_epochs, rate, size = strategy.hyper(cfg, task, len(texts))
    model = TaskModel(enc, head, task.level)
    strategy.select_trainable(cfg, enc.model, enc.num_layers)
    for p in head.parameters():
        p.requires_grad_(True)
    loader = DataLoader(range(len(tokens)), batch_sampler=LengthBucketSampler(tokens.lengths(), size, cfg.seed),
                        collate_fn=lambda idx: {**enc.collate(tokens, idx), "labels": torch.as_tensor(idx)})
    val = prepared["validation"]

    def evaluate(m):
        score = ctx.score(batched_logits(m, m.encoder, val.tokens, 256, run_precision))
        return score, {task.primary_metric: score}

    progress.info(f"distilling {teacher} into {'a ' + str(len(kept)) + '-layer copy' if kept else student} "
                  f"({len(kept) if kept else enc.num_layers} layers): {len(splits.train)} labelled and "
                  f"{len(pool) if pool else 0} unlabelled texts, T={temperature}, hard weight {hard_weight}")
    with phases("train"):
        loop = fit(model, loader, loss_fn, evaluate, ctx.loop_config(n_epochs, rate, "distil", evals_per_epoch=2))
    phases.move(loop.eval_seconds, "train", "validation_passes")
    result = StrategyResult(head=head, loop=loop, encoder_trained=True, encoder=enc,
                            costs=strategy.costs(ctx, model, loop.tokens))
    with phases("evaluate"):
        evaluation = steps.evaluate(ctx, result)
        teacher_scores = {k: {n: v for n, v in taught.evaluate(ex).items() if isinstance(v, (int, float))}
                          for k, ex in (("validation", splits.validation), ("test", splits.test)) if ex is not None}
    with phases("calibrate"):
        calibration = steps.calibrate(task, evaluation, prepared, cfg.calibrate)
    meta = record.model_meta(cfg, splits, enc, "full", calibration)
    student_predictor = Predictor(TaskModel(enc, head, task.level), enc, task, meta, precision="fp32")
    with phases("speed"):
        timed = (splits.test or splits.validation)
        timed = timed.subset(range(min(len(timed), SPEED_TEXTS)))
        speed = prediction_speed({"teacher": taught, "student": student_predictor}, timed.texts, timed.pairs)
    split = "test" if splits.test is not None else "validation"
    metric = task.primary_metric
    report = {"teacher": str(teacher), "layers_kept": kept, "student": student, "teacher_layers":
              taught.encoder.num_layers, "student_layers": enc.num_layers, "temperature": temperature,
              "hard_weight": hard_weight, "labelled_texts": len(splits.train), "unlabelled_texts": len(pool or []),
              "unlabelled": unlabelled, "teacher_scores": teacher_scores, "compared_on": split,
              "kept_share": round(evaluation.scores[split][metric] / teacher_scores[split][metric], 4)
              if teacher_scores[split][metric] else None,
              "speed": speed, "speedup": round(speed["student"] / speed["teacher"], 2),
              "params": {"teacher": sum(p.numel() for p in taught.fp32_model.parameters()),
                         "student": sum(p.numel() for p in model.parameters())}}
    choice = steps.Choice("full", f"distilled from {teacher}", {}, None)
    adapted = steps.Adapted(result, "full", choice.reason)
    costs = {"wall_seconds": round(time.perf_counter() - t_start, 2), "precision": run_precision, "device": device,
             "processes": 1}
    metrics = record.run_metrics(splits, prepared, choice, adapted, evaluation, costs,
                                 {"calibration": calibration, "distillation": report})
    config = {**record.used_config(cfg, splits, adapted, enc, run_precision),
              "distill": {k: report[k] for k in ("teacher", "layers_kept", "student", "temperature", "hard_weight",
                                                 "unlabelled")}}
    record.write(Path(out), cfg, splits, prepared, adapted, evaluation, enc, meta, metrics, config, phases=phases)
    progress.info(f"student {split} {metric} {evaluation.scores[split][metric]:.4f}, teacher "
                  f"{teacher_scores[split][metric]:.4f} (kept {report['kept_share']:.1%}); predicts "
                  f"{report['speedup']}x as fast ({speed['student']:.0f} against {speed['teacher']:.0f} texts/s)")
    return Path(out), metrics


def soft_loss(label_space: str, soft, hard, n_labelled: int, temperature: float, hard_weight: float, task_loss):
    """``loss(logits, idx)`` over rows ``idx`` of the taught texts (the first ``n_labelled`` have the targets
    ``hard``): the module docstring's formula. ``soft`` (N, C) holds the teacher's outputs."""
    import torch.nn.functional as F

    t = temperature

    def loss(logits, idx):
        target = soft[idx].to(logits.device)
        if label_space == "classes":
            s = F.kl_div(F.log_softmax(logits / t, -1), F.log_softmax(target / t, -1), reduction="batchmean",
                         log_target=True) * t * t
        elif label_space == "label sets":
            s = F.binary_cross_entropy_with_logits(logits / t, (target / t).sigmoid()) * t * t
        else:
            s = F.mse_loss(logits, target.reshape(logits.shape))
        labelled = idx < n_labelled
        if not (hard_weight and labelled.any()):
            return (1 - hard_weight) * s
        rows = idx[labelled]
        h = task_loss(logits[labelled.to(logits.device)], hard[rows].to(logits.device))
        return (1 - hard_weight) * s + hard_weight * h * labelled.float().mean()

    return loss


def prediction_speed(predictors: dict, texts: list[str], pairs: list[str] | None, repeats: int = 2) -> dict:
    """Texts per second of ``predictor.predict(texts, pairs)`` for each predictor, best of ``repeats``, the
    predictors interleaved (each repeat times every one) after a warm-up on 8 texts."""
    best = {k: float("inf") for k in predictors}
    for p in predictors.values():
        p.predict(texts[:8], pairs[:8] if pairs else None)
    for _ in range(repeats):
        for name, p in predictors.items():
            t0 = time.perf_counter()
            p.predict(texts, pairs)
            best[name] = min(best[name], time.perf_counter() - t0)
    return {k: round(len(texts) / max(v, 1e-9), 1) for k, v in best.items()}
