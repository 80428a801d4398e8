"""Layer-wise probing: where in the encoder does the task's information live?

One frozen pass over the texts keeps the pooled hidden state of every layer (0 = the token
embeddings, 1..L = the transformer layers) and every pooling asked for, through the
feature cache (so a second probe, or a ``--layer best`` run after it, reads them back).
A linear probe per (layer, pooling) is then trained on train features and scored on
validation: multinomial logistic regression (L2, C = 1) on standardised features,
which on a few thousand examples and a few hundred dimensions takes about a second and
needs no learning-rate or epoch choices.
"""

from __future__ import annotations

import time

import numpy as np

from .. import progress
from ..encoders.cache import cached_features
from ..errors import UserError
from ..steps import load_splits

PROBE_C = 1.0


def layer_features(encoder, examples, tokens, layers: list[int], poolings: list[str], precision: str = "fp32",
                   split: str = "train") -> tuple[dict[tuple[int, str], np.ndarray], bool]:
    with progress.bar(f"encode {split} (all layers)", total=len(tokens)) as pbar:
        return cached_features(encoder, examples.texts, examples.pairs, tokens, layers, poolings,
                               precision=precision, progress=pbar)


def make_probe(seed: int = 0, C: float = PROBE_C):
    """An unfitted linear probe: standardisation then L2 logistic regression (scikit-learn pipeline) of
    inverse regularisation strength ``C``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000, random_state=seed))


def fit_probe(x: np.ndarray, y: np.ndarray, seed: int = 0):
    return make_probe(seed).fit(x, y)


def score_layers(train: dict, y_train: np.ndarray, val: dict, y_val: np.ndarray, seed: int = 0) -> list[dict]:
    """One row per (layer, pooling): validation accuracy and macro-F1 of a linear probe."""
    from sklearn.metrics import f1_score

    rows = []
    with progress.bar("probe layers", total=len(train)) as pbar:
        for (layer, pooling), x in sorted(train.items()):
            t0 = time.perf_counter()
            clf = fit_probe(x, y_train, seed)
            pred = clf.predict(val[(layer, pooling)])
            rows.append({"layer": layer, "pooling": pooling, "accuracy": round(float((pred == y_val).mean()), 4),
                         "macro_f1": round(float(f1_score(y_val, pred, average="macro", zero_division=0)), 4),
                         "fit_seconds": round(time.perf_counter() - t0, 2)})
            pbar.advance(1)
    return rows


def _check_classify(task) -> None:
    if task.label_space != "classes":
        raise UserError(f"layer probing trains a linear classifier of one class per example: the '{task.name}' "
                        "task is not supported.")


def choose_layer(encoder, splits, tokens, targets, precision: str = "fp32") -> tuple[int, dict]:
    """``--layer best``: the layer whose linear probe scores best on validation (ties: the shallower)."""
    _check_classify(splits.task)
    layers = list(range(encoder.num_layers + 1))
    pooling = encoder.pooling
    tr, _ = layer_features(encoder, splits.train, tokens["train"], layers, [pooling], precision, "train")
    va, _ = layer_features(encoder, splits.validation, tokens["validation"], layers, [pooling], precision,
                           "validation")
    rows = score_layers(tr, targets["train"].numpy(), va, targets["validation"].numpy())
    best = max(rows, key=lambda r: (r["accuracy"], r["macro_f1"], -r["layer"]))
    return int(best["layer"]), {"layer": int(best["layer"]), "metric": "accuracy", "table": rows}


def probe_layers(data: str, model: str = "default", poolings: list[str] | None = None,
                 validation: str | None = None, text_column: str | None = None, pair_column: str | None = None,
                 label_column: str | None = None, max_length: int = 256, validation_fraction: float = 0.1,
                 seed: int = 42, precision: str = "fp32") -> dict:
    """Probe every layer (and every pooling in ``poolings``) of ``model`` on a labelled data set.

    Returns ``{"model", "metric", "rows": [{layer, pooling, accuracy, macro_f1}], "best", "seconds", ...}``.
    """
    from ..encoders import Encoder  # lazy: torch (~2 s), only when the encoder runs
    from ..encoders.pooling import POOLINGS  # lazy: torch (~2 s)

    t0 = time.perf_counter()
    splits = load_splits(data, validation, None, text_column, pair_column, label_column, validation_fraction, seed)
    encoder = Encoder.load(model, max_length=max_length, lazy=True)  # built only on a cache miss
    poolings = poolings or [encoder.pooling]
    for p in poolings:
        if p not in POOLINGS:
            raise UserError(f"--pooling '{p}': unknown. Expected one of: {', '.join(POOLINGS)}.")
    task = splits.task
    _check_classify(task)
    layers = list(range(encoder.num_layers + 1))
    feats, hits = {}, 0
    t_enc = time.perf_counter()
    for split, ex in (("train", splits.train), ("validation", splits.validation)):
        tok = encoder.tokenize(ex.texts, ex.pairs)
        feats[split], hit = layer_features(encoder, ex, tok, layers, poolings, precision, split)
        hits += hit
    encode_seconds = time.perf_counter() - t_enc
    y_tr = task.encode_labels(splits.train.labels).numpy()
    y_va = task.encode_labels(splits.validation.labels).numpy()
    rows = score_layers(feats["train"], y_tr, feats["validation"], y_va, seed)
    best = max(rows, key=lambda r: (r["accuracy"], r["macro_f1"], -r["layer"]))
    return {"data": str(data), "model": model, "encoder_layers": encoder.num_layers, "poolings": poolings,
            "metric": "accuracy", "train": len(splits.train), "validation": len(splits.validation),
            "validation_carved": splits.validation_carved, "rows": rows,
            "best": {"layer": best["layer"], "pooling": best["pooling"], "accuracy": best["accuracy"]},
            "cache_hits": hits, "encode_seconds": round(encode_seconds, 2),
            "seconds": round(time.perf_counter() - t0, 2)}


def format_table(result: dict) -> str:
    lines = [f"{'layer':<12} {'pooling':<8} {'accuracy':>9} {'macro-F1':>9}"]
    for r in result["rows"]:
        name = "embeddings" if r["layer"] == 0 else str(r["layer"])
        star = "  <- best" if (r["layer"], r["pooling"]) == (result["best"]["layer"], result["best"]["pooling"]) else ""
        lines.append(f"{name:<12} {r['pooling']:<8} {r['accuracy']:>9.4f} {r['macro_f1']:>9.4f}{star}")
    lines.append(f"{result['train']} train / {result['validation']} validation examples"
                 f"{' (validation carved from train)' if result['validation_carved'] else ''}; "
                 f"{result['seconds']:.1f} s ({result['encode_seconds']:.1f} s encoding)")
    return "\n".join(lines)
