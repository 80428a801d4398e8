"""Active learning: which unlabelled texts to label next, and adding them back.

``suggest`` ranks a pool of unlabelled texts by what labelling them would teach the model:

1. *uncertainty* from the run's calibrated probabilities: the margin score
   u = 1 - (p_(1) - p_(2)), one minus the gap between the two most probable labels
   (``entropy``, -sum p log p / log C, is the alternative);
2. *diversity* among the ``factor * n`` most uncertain texts: greedy k-centre selection on
   the run's own (L2-normalised) pooled representations, starting from the most uncertain
   text and then always taking the candidate farthest from everything already taken, so
   that the ``n`` chosen are not near-duplicates of one another.

The chosen rows are written as JSON lines ready for labelling: the pool row's own fields,
the model's text (and pair) column, an empty label column (a label the pool row already had
is kept), and ``suggested_label``, ``confidence``, ``uncertainty`` and ``rank`` to help.

``enctune train --add labelled.jsonl`` then appends the labelled rows to the training split
of a new run (validation and test stay as they were, so scores stay comparable); rows whose
text is already in train are skipped, and labels new to the data set extend the label map.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import progress
from ..atomic import atomic_write_text
from ..data import Columns, load_texts
from ..data.readers import read_table
from ..errors import UserError
from ..numeric import softmax

UNCERTAINTY = ("margin", "entropy")


def uncertainty(probs: np.ndarray, method: str = "margin") -> np.ndarray:
    """Per row of ``probs`` (N, C): higher means less sure. Both scores lie in [0, 1]."""
    if method == "margin":
        top2 = -np.sort(-probs, axis=-1)[:, :2]
        return 1.0 - (top2[:, 0] - top2[:, 1])
    if method == "entropy":
        p = np.clip(probs, 1e-12, 1.0)
        return -(p * np.log(p)).sum(-1) / np.log(probs.shape[-1])
    raise UserError(f"--by '{method}': expected one of {', '.join(UNCERTAINTY)}.")


def select(scores: np.ndarray, embeddings: np.ndarray, n: int, factor: int = 5) -> np.ndarray:
    """Indices of ``n`` rows: greedy k-centre over the ``factor * n`` highest ``scores``.

    ``embeddings`` (N, H) are L2-normalised here; distances are Euclidean. ``factor`` = 1 is
    pure uncertainty sampling.
    """
    n = min(n, len(scores))
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    k = min(len(scores), max(n, factor * n))
    cand = np.argsort(-scores, kind="stable")[:k]
    x = embeddings[cand].astype(np.float64)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    chosen = [0]  # the most uncertain candidate
    dist = np.linalg.norm(x - x[0], axis=1)
    for _ in range(n - 1):
        dist[chosen] = -1.0
        j = int(dist.argmax())
        chosen.append(j)
        dist = np.minimum(dist, np.linalg.norm(x - x[j], axis=1))
    return cand[np.asarray(chosen)]


def suggest(run: str, pool: str, n: int = 50, by: str = "margin", factor: int = 5,
            text_column: str | None = None, pair_column: str | None = None, batch_size: int = 256) -> list[dict]:
    """The ``n`` pool rows to label next, most useful first (see the module docstring)."""
    from ..model import TaskModel, head_logits  # lazy: torch (~2 s)
    from ..serve.predictor import Predictor  # lazy: torch (~2 s)

    if n < 1:
        raise UserError(f"--n {n}: expected at least 1.")
    if factor < 1:
        raise UserError(f"--factor {factor}: expected at least 1.")
    uncertainty(np.ones((1, 2)) / 2, by)  # validates ``by`` before any work
    predictor = Predictor.load(run)
    if not predictor.task.calibrates:
        raise UserError(f"{run}: suggest ranks the runs of tasks with class probabilities; this one is "
                        f"'{predictor.task.name}'.")
    ex = load_texts(pool, text_column, pair_column)
    with progress.bar("encode pool", total=len(ex)) as pbar:
        from ..serve.predictor import embed  # lazy: torch (~2 s)

        feats = embed(predictor.encoder, ex.texts, ex.pairs, batch_size=batch_size, progress=pbar)
    if isinstance(predictor.model, TaskModel):  # one encoder pass: the head reads the pooled features
        logits = predictor.calibrated(head_logits(predictor.model.head, feats))
    else:
        logits = predictor.logits(ex.texts, ex.pairs, batch_size)
    probs = softmax(logits)
    scores = uncertainty(probs, by)
    picked = select(scores, feats, n, factor)
    cols = predictor.meta.get("columns") or {}
    text_key, pair_key, label_key = cols.get("text") or "text", cols.get("pair"), cols.get("label") or "label"
    out = []
    for rank, i in enumerate(picked, 1):
        record = dict(ex.table.records[ex.rows[i]]) if ex.table is not None else {}
        record[text_key] = ex.texts[i]
        if pair_key and ex.pairs is not None:
            record[pair_key] = ex.pairs[i]
        record.setdefault(label_key, "")
        best = int(probs[i].argmax())
        record.update({"suggested_label": predictor.task.output_label(best),
                       "confidence": round(float(probs[i, best]), 4),
                       "uncertainty": round(float(scores[i]), 4), "rank": rank})
        out.append(record)
    return out


def write_suggestions(rows: list[dict], out: str | Path) -> None:

    if Path(out).suffix.lower() not in (".jsonl", ".ndjson"):
        raise UserError(f"--out {out}: expected a .jsonl file.")
    atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def add_labelled(splits, path: str):
    """``--add``: the training split with the labelled rows of ``path`` appended; and a summary."""

    if not Path(path).is_file():
        raise UserError(f"--add {path}: no such file.")
    table = read_table(path)
    c = splits.columns
    present = lambda name: name if name and name in table.columns else None  # noqa: E731
    task = splits.task
    cols = task.infer_columns(table, present(c.text), present(c.pair), present(c.label))
    if bool(cols.pair) != bool(c.pair):
        raise UserError(f"{path}: the training data {'has' if c.pair else 'has no'} text pairs "
                        f"(column '{c.pair}'), this file {'has' if cols.pair else 'has none'}.")
    added = task.read(table, Columns(cols.text, cols.pair, cols.label))
    train = splits.train
    seen = set(zip(train.texts, train.pairs or [None] * len(train), strict=False))
    keep = [i for i in range(len(added))
            if (added.texts[i], added.pairs[i] if added.pairs is not None else None) not in seen]
    new = added.subset(keep)
    merged = train + new
    before = list(task.labels)
    task.fit(merged, c.label)  # the label map (or target statistics) now covers the added rows
    task.resolve_pair_mode(merged.pairs is not None)
    info = {"file": str(path), "rows": len(added), "appended": len(new), "skipped_already_in_train":
            len(added) - len(new), "new_labels": sorted(set(task.labels) - set(before))}
    return replace(splits, train=merged, files={**splits.files, "add": str(path)}), info
