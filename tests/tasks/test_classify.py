"""``classify``: one label per text or text pair; its metrics against hand counts. ``toy_rows`` is the
sweep's data for this task (test_every_task.py)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

import enctune
from enctune.errors import UserError

from ..conftest import FILLER, NEGATIVE, POSITIVE, make_rows
from .helpers import FULL, roundtrip, splits


def toy_rows(n, seed):
    """A sentiment toy: positive and negative words in filler."""
    return make_rows(n, seed)


def pair_rows(n, seed):
    """Label: the sentiment of the second text (the first is filler), so only a model that reads the
    pair can learn it."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        b = rng.choice([POSITIVE, NEGATIVE])
        rows.append({"text": " ".join(rng.sample(FILLER, 4)),
                     "text_pair": " ".join(rng.sample(b, 2) + rng.sample(FILLER, 2)),
                     "label": "yes" if b is POSITIVE else "no"})
    return rows


# ---- each task kind: train -> save -> load -> predict ---------------------------------------
def test_classify_text_pairs(tiny_bert_std, tmp_path):
    data = splits(tmp_path, pair_rows)
    run = enctune.train(data=str(data), out=str(tmp_path / "run"), model=str(tiny_bert_std), **FULL)
    assert run.metrics["task"] == "classify"
    meta = json.loads((tmp_path / "run" / "model" / "enctune.json").read_text())
    assert meta["columns"]["pair"] == "text_pair" and meta["pair_mode"] == "cross"
    assert run.metrics["test"]["accuracy"] >= 0.8
    preds = roundtrip(run, tmp_path / "run", ["the film it", "the film it"], ["lovely superb a", "awful dull it"])
    assert {p["label"] for p in preds} <= {"yes", "no"}
    with pytest.raises(UserError, match="pairs"):
        enctune.load(tmp_path / "run").predict(["good"])


def test_classify_metrics_against_hand_counts():
    from enctune.tasks.classify import ClassifyTask

    task = ClassifyTask.__new__(ClassifyTask)
    task.labels = ["a", "b", "c"]
    # true:      a a a b b c c   (c is never predicted; b is predicted once, wrongly)
    # predicted: a a b a a a a
    targets = np.array([0, 0, 0, 1, 1, 2, 2])
    logits = np.eye(3)[[0, 0, 1, 0, 0, 0, 0]]
    m = task.metrics(logits, targets)
    assert m["confusion_matrix"] == [[2, 1, 0], [2, 0, 0], [2, 0, 0]]
    assert m["accuracy"] == pytest.approx(2 / 7)
    a = m["per_class"]["a"]  # tp 2, predicted 6, support 3
    assert (a["precision"], a["recall"], a["support"]) == (pytest.approx(2 / 6), pytest.approx(2 / 3), 3)
    assert a["f1"] == pytest.approx(2 * (1 / 3) * (2 / 3) / (1 / 3 + 2 / 3))
    assert m["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert m["per_class"]["c"]["precision"] == 0.0  # never predicted: 0, not a division by zero
    assert m["macro_f1"] == pytest.approx(a["f1"] / 3)
