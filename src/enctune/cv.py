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

FOLD_METRICS = ("accuracy", "macro_f1")


def check_folds(k: int, labels: list[str]) -> None:
    """UserError unless every label has at least ``k`` training examples (called before any training)."""
    smallest_label, smallest = min(Counter(labels).items(), key=lambda kv: kv[1])
    if smallest < k:
        raise UserError(f"--cv {k}: label '{smallest_label}' has only {smallest} training example(s); stratified "
                        f"{k}-fold needs at least {k} per label. Use a smaller --cv.")


def cross_validate(cfg, splits, strategy_name: str, layer: int, precision: str) -> dict:
    from sklearn.model_selection import StratifiedKFold

    from .calibrate import ece, fit_temperature, softmax
    from .encoders import Encoder
    from .model import TaskModel, head_logits
    from .serve.predictor import Predictor
    from .strategies import STRATEGIES, RunContext
    from .tasks import TASKS

    k = cfg.cv
    t0 = time.perf_counter()
    train = splits.train
    check_folds(k, train.labels)
    folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=cfg.seed)
    values: dict[str, list[float]] = {}
    quiet = progress.is_quiet()
    for f, (tr, te) in enumerate(folds.split(np.zeros(len(train)), train.labels)):
        progress.info(f"cross-validation fold {f + 1}/{k}: train {len(tr)}, held out {len(te)}")
        progress.set_quiet(True)  # one line per fold; the folds' own bars would drown the run's
        try:
            encoder = Encoder.load(cfg.model, pooling=cfg.pooling, max_length=cfg.max_length, layer=layer,
                                   trust_remote_code=cfg.trust_remote_code)
            fold = replace(splits, train=train.subset(tr), test=train.subset(te))
            named = {"train": fold.train, "validation": fold.validation, "test": fold.test}
            tokens = {s: encoder.tokenize(ex.texts, ex.pairs) for s, ex in named.items()}
            task = TASKS[cfg.task](splits.labels, splits.label_type)
            targets = {s: task.encode_labels(ex.labels) for s, ex in named.items()}
            if cfg.class_weights == "balanced":
                task.class_weights = task.balanced_weights(targets["train"], len(splits.labels))
            result = STRATEGIES[strategy_name]().run(RunContext(cfg, encoder, task, fold, tokens, targets,
                                                                precision))
            predictor = Predictor(TaskModel(encoder, result.head), encoder, task, {})
            logits = {s: head_logits(result.head, result.features[s]) if s in result.features
                      else predictor.logits(named[s].texts, named[s].pairs) for s in ("validation", "test")}
        finally:
            progress.set_quiet(quiet)
        y = targets["test"].numpy()
        m = task.metrics(logits["test"], y)
        for name in FOLD_METRICS:
            if name in m:
                values.setdefault(name, []).append(float(m[name]))
        if task.name == "classify":
            values.setdefault("ece_uncalibrated", []).append(ece(softmax(logits["test"]), y))
            if cfg.calibrate:
                t = fit_temperature(logits["validation"], targets["validation"].numpy())
                values.setdefault("ece_calibrated", []).append(ece(softmax(logits["test"] / t), y))
    summary = {name: {"mean": round(float(np.mean(v)), 6), "std": round(float(np.std(v, ddof=1)), 6),
                      "values": [round(x, 6) for x in v]} for name, v in values.items()}
    return {"folds": k, "stratified": True, "seed": cfg.seed, "held_out": "each fold of train in turn",
            "final_model": "trained on all of train", "metrics": summary,
            "seconds": round(time.perf_counter() - t0, 2)}
