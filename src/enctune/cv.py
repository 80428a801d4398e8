"""``--cv k``: stratified k-fold cross-validation on the training split, for small data.

Each fold trains the run's strategy from the pre-trained encoder on k-1 folds of train
(early stopping and calibration on the run's validation split, as in the final run) and
scores the held-out fold. metrics.json gets, per metric, the mean, the standard deviation
across folds (ddof = 1) and the k values. The final model is then trained as usual on all
of train, so cross-validation measures how much the score moves with the data, and the
model you keep has seen every example.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from dataclasses import replace

import numpy as np

from . import progress, steps
from .calibrate import ece, fit_temperature
from .errors import UserError
from .numeric import softmax
from .strategies import STRATEGIES, RunContext

FOLD_METRICS = ("accuracy", "macro_f1", "micro_f1", "spearman", "pearson", "rmse", "f1", "exact_match")


def check_folds(k: int, labels: list | None) -> None:
    """UserError unless every label has at least ``k`` training examples (called before any training).
    ``labels`` is the task's stratification key (None: plain k-fold, only the row count matters)."""
    if not labels:
        return
    smallest_label, smallest = min(Counter(labels).items(), key=lambda kv: kv[1])
    if smallest < k:
        raise UserError(f"--cv {k}: label '{smallest_label}' has only {smallest} training example(s); stratified "
                        f"{k}-fold needs at least {k} per label. Use a smaller --cv.")


def cross_validate(cfg, splits, strategy_name: str, layer: int, precision: str) -> dict:
    """Per-metric mean, standard deviation and fold values of the strategy run on each fold (see the module
    docstring); the steps are the run's own (``enctune.steps``)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    k = cfg.cv
    t0 = time.perf_counter()
    train = splits.train
    key = splits.task.stratify_key(train)
    check_folds(k, key)
    if len(train) < k:
        raise UserError(f"--cv {k}: only {len(train)} training examples.")
    folds = (StratifiedKFold if key else KFold)(n_splits=k, shuffle=True, random_state=cfg.seed)
    values: dict[str, list[float]] = {}
    quiet = progress.is_quiet()
    for f, (tr, te) in enumerate(folds.split(np.zeros(len(train)), key)):
        progress.info(f"cross-validation fold {f + 1}/{k}: train {len(tr)}, held out {len(te)}")
        progress.set_quiet(True)  # one line per fold; the folds' own bars would drown the run's
        try:
            task = copy.deepcopy(splits.task)  # the final run's task (thresholds...) stays untouched
            fold = replace(splits, train=train.subset(tr), test=train.subset(te), task=task)
            encoder = steps.load_encoder(cfg, task, layer=layer, lazy=False)
            prepared = steps.prepare(task, encoder, fold, cfg.class_weights)
            ctx = RunContext(cfg, encoder, task, fold, prepared, precision)
            result = STRATEGIES[strategy_name]().run(ctx)
            evaluation = steps.evaluate(ctx, result)
        finally:
            progress.set_quiet(quiet)
        for name in FOLD_METRICS:
            if name in evaluation.scores["test"]:
                values.setdefault(name, []).append(float(evaluation.scores["test"][name]))
        if task.calibrates:
            y = np.asarray(prepared["test"].targets)
            logits = evaluation.outputs["test"]
            values.setdefault("ece_uncalibrated", []).append(ece(softmax(logits), y))
            if cfg.calibrate:
                t = fit_temperature(evaluation.outputs["validation"], np.asarray(prepared["validation"].targets))
                values.setdefault("ece_calibrated", []).append(ece(softmax(logits / t), y))
    summary = {name: {"mean": round(float(np.mean(v)), 6), "std": round(float(np.std(v, ddof=1)), 6),
                      "values": [round(x, 6) for x in v]} for name, v in values.items()}
    return {"folds": k, "stratified": bool(key), "seed": cfg.seed, "held_out": "each fold of train in turn",
            "final_model": "trained on all of train", "metrics": summary,
            "seconds": round(time.perf_counter() - t0, 2)}
