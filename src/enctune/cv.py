"""``--cv k``: stratified k-fold cross-validation on the training split, for small data.

Each fold trains the run's strategy from the pre-trained encoder on k-1 folds of train
(early stopping and calibration on the run's validation split, as in the final run) and
scores the held-out fold. metrics.json gets, per metric, the mean, the standard deviation
across folds (ddof = 1) and the k values. The final model is then trained as usual on all
of train, so cross-validation measures how much the score moves with the data, and the
model you keep has seen every example.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace

import numpy as np

from . import progress
from .errors import UserError

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
    import copy

    from sklearn.model_selection import KFold, StratifiedKFold

    from .calibrate import ece, fit_temperature, softmax
    from .encoders import Encoder
    from .model import TaskModel, batched_logits, head_logits
    from .strategies import STRATEGIES, RunContext

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
            encoder = Encoder.load(cfg.model, pooling=cfg.pooling, max_length=cfg.max_length, layer=layer,
                                   trust_remote_code=cfg.trust_remote_code)
            fold = replace(splits, train=train.subset(tr), test=train.subset(te))
            named = {"train": fold.train, "validation": fold.validation, "test": fold.test}
            task = copy.deepcopy(splits.task)  # the final run's task (thresholds...) stays untouched
            if task.level == "token":
                encoder.tokenizer.padding_side = "right"
            prepared = {s: task.prepare(encoder, ex) for s, ex in named.items()}
            targets = {s: p.targets for s, p in prepared.items()}
            if cfg.class_weights == "balanced":
                task.class_weights = task.balanced_weights(targets["train"], len(task.labels))
            result = STRATEGIES[strategy_name]().run(RunContext(cfg, encoder, task, fold, prepared, precision))
            model = TaskModel(encoder, result.head, task.level)
            logits = {s: head_logits(result.head, result.features[s]) if s in result.features
                      else batched_logits(model, encoder, prepared[s].tokens, 256, "fp32")
                      for s in ("validation", "test")}
            task.after_fit(logits["validation"], prepared["validation"], named["validation"])
        finally:
            progress.set_quiet(quiet)
        m = task.evaluate_outputs(logits["test"], prepared["test"], named["test"])
        for name in FOLD_METRICS:
            if name in m:
                values.setdefault(name, []).append(float(m[name]))
        if task.name == "classify":
            y = targets["test"].numpy()
            values.setdefault("ece_uncalibrated", []).append(ece(softmax(logits["test"]), y))
            if cfg.calibrate:
                t = fit_temperature(logits["validation"], targets["validation"].numpy())
                values.setdefault("ece_calibrated", []).append(ece(softmax(logits["test"] / t), y))
    summary = {name: {"mean": round(float(np.mean(v)), 6), "std": round(float(np.std(v, ddof=1)), 6),
                      "values": [round(x, 6) for x in v]} for name, v in values.items()}
    return {"folds": k, "stratified": bool(key), "seed": cfg.seed, "held_out": "each fold of train in turn",
            "final_model": "trained on all of train", "metrics": summary,
            "seconds": round(time.perf_counter() - t0, 2)}
