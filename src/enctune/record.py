"""What a finished run records: the model folder's settings, metrics.json, and the run folder's files.

``model_meta`` is what ``enctune.json`` holds (what prediction needs to rebuild the model);
``run_metrics`` is metrics.json (scores, history, costs, data, environment); ``write`` puts the
run folder in place in one step with its model card, report and mistakes.
"""

from __future__ import annotations

import json
import platform
import resource
import warnings
from pathlib import Path

from . import progress
from .analysis.report import confident_mistakes, render_run_report
from .card import model_card
from .encoders.cache import texts_hash
from .encoders.resolve import encoder_identity
from .model_folder import write_model_folder
from .phases import Phases
from .run_folder import write_run
from .steps import Adapted, Choice, Evaluation, Splits
from .strategies import STRATEGIES
from .version import __version__


def model_meta(cfg, splits: Splits, encoder, strategy: str, calibration: dict | None) -> dict:
    """enctune.json: the task and its labels, how texts are encoded and pooled, the columns, the strategy."""
    task = splits.task
    meta = {
        **task.config(),
        "level": task.level, "pooling": encoder.pooling, "layer": encoder.layer, "max_length": encoder.max_length,
        "dropout": cfg.dropout, "strategy": strategy, "base_model": cfg.model,
        "columns": {"text": splits.columns.text, "pair": splits.columns.pair, "label": splits.columns.label},
        "enctune_version": __version__,
    }
    if calibration is not None and calibration["kept"]:
        meta["temperature"] = calibration["temperature"]
    if getattr(encoder, "template", None) is not None:  # zeroshot cloze: every text is wrapped before tokenizing
        meta["template"] = encoder.template
    return meta


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_metrics(splits: Splits, prepared: dict, choice: Choice, adapted: Adapted, evaluation: Evaluation,
                costs: dict, extra: dict) -> dict:
    """metrics.json: scores per split, what was chosen and why, the loop's history, costs, the data."""
    import torch  # lazy: torch (~2 s) is loaded by the run already; here for its version and thread count

    task, loop = splits.task, adapted.result.loop
    named = {k: ex for k, ex in splits.named().items() if ex is not None}
    metrics = {
        "task": task.name, "task_reason": splits.task_reason, "strategy": adapted.strategy,
        "strategy_reason": adapted.reason, "primary_metric": task.primary_metric,
        **({"fitted_on_validation": evaluation.fitted} if evaluation.fitted else {}),
        "validation": evaluation.scores.get("validation"), "test": evaluation.scores.get("test"),
        "history": loop.history, "loss_curve": loop.losses, "kept_step": loop.kept_step,
        "costs": {
            **costs, "train_seconds": round(loop.seconds, 2), "eval_seconds": round(loop.eval_seconds, 2),
            "train_examples_per_second": round(loop.examples / max(loop.seconds - loop.eval_seconds, 1e-9), 1),
            "train_examples_seen": loop.examples, "tokens_seen": loop.tokens, "steps": loop.steps,
            "epochs_run": loop.epochs_run, "stopped_early": loop.stopped_early,
            "peak_rss_mb": round(peak_rss_mb(), 1), "threads": torch.get_num_threads(),
            "resumed_at_step": loop.resumed_at_step, "loop_started_at": loop.started_at and round(loop.started_at, 2),
            **({"history_seconds": loop.history_seconds} if len(loop.history_seconds) == len(loop.history) else {}),
            "truncated_texts": {k: p.tokens.truncated for k, p in prepared.items()}, **adapted.result.costs,
        },
        "data": {
            "files": splits.files, "labels": task.labels, "validation_carved": splits.validation_carved,
            "sizes": {k: len(ex) for k, ex in named.items()},
            "fingerprints": {k: texts_hash(ex.texts, ex.pairs)[:16] for k, ex in named.items()},
        },
        "environment": {"enctune": __version__, "torch": torch.__version__, "python": platform.python_version()},
    }
    if adapted.table is not None:
        metrics["strategy_table"] = adapted.table
    metrics["estimates"] = {k: {"seconds": round(e.seconds, 1), "memory_mb": round(e.memory_mb),
                                "trainable_params": e.trainable_params} for k, e in choice.estimates.items()}
    metrics.update({k: v for k, v in extra.items() if v is not None})
    return metrics


def used_config(cfg, splits: Splits, adapted: Adapted, encoder, precision: str) -> dict:
    """config.json: the configuration the run used, with what the config left open resolved (the data files and
    columns found, the strategy's epochs, learning rate and batch size, the encoder's pooling and layer, the
    task, the precision). A carved validation split stays None: no file holds it."""
    task = splits.task
    found = {"validation": splits.files.get("validation"), "test": splits.files.get("test"),
             "text_column": splits.columns.text, "text_pair_column": splits.columns.pair,
             "label_column": splits.columns.label}
    return {**cfg.model_dump(), **{k: v for k, v in found.items() if v is not None},
            **STRATEGIES[adapted.strategy]().resolved(cfg, task, len(splits.train)),
            "strategy": adapted.strategy, "task": task.name, "pair_mode": task.pair_mode,
            "pooling": encoder.pooling, "layer": encoder.layer, "max_length": encoder.max_length,
            "precision": precision}


def write(out: Path, cfg, splits: Splits, prepared: dict, adapted: Adapted, evaluation: Evaluation, encoder,
          meta: dict, metrics: dict, config: dict, folders: dict | None = None, phases: Phases | None = None) -> None:
    """The run folder, in one step: model/, metrics.json, config.json, mistakes.jsonl and report.html. With
    ``phases``, the report's and the writing's seconds go into metrics.json's ``costs.phases`` (serialised last,
    after the model folder is written, so that the phases cover the run up to that moment)."""

    phases = phases or Phases()
    result, task = adapted.result, splits.task
    with phases("report"):
        mistakes = []
        if task.calibrates:  # the most confident mistakes: classes with probabilities
            mistakes = confident_mistakes(splits.named(), evaluation.outputs,
                                          {k: p.targets for k, p in prepared.items()}, task, meta.get("temperature"))
        files = {"config.json": json.dumps(config, indent=2) + "\n",
                 "mistakes.jsonl": "".join(json.dumps(m) + "\n" for m in mistakes)}
        try:
            files["report.html"] = render_run_report(out.name, metrics, config, mistakes)
        except Exception as e:  # a figure that fails to draw must not cost the user the trained model
            warnings.warn(f"report.html not written ({type(e).__name__}: {e}); the run is complete without it.",
                          UserWarning, stacklevel=2)
        card = model_card(meta, metrics, config, encoder_identity(cfg.model, encoder.source))
    strategy = STRATEGIES[adapted.strategy]

    def write_model(folder: Path) -> None:
        with phases("write"):
            write_model_folder(folder, encoder, result.head, meta, card,
                               lambda enc, dst: strategy.write_encoder(enc, dst, result.encoder_trained))

    def metrics_text() -> str:
        metrics["costs"]["phases"] = phases.report()
        return json.dumps(metrics, indent=2) + "\n"

    write_run(out, write_model, {**files, "metrics.json": metrics_text}, folders)
    progress.info(f"wrote {out}")
