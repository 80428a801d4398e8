"""``multilabel``: any number of labels per text; per-label thresholds tuned on validation."""

from __future__ import annotations

import random

import numpy as np
import pytest

import enctune
from enctune.tasks.multilabel import MultilabelTask

from ..conftest import FILLER, NEGATIVE, POSITIVE
from .helpers import FULL, fails, roundtrip, splits


def toy_rows(n, seed):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words, labels = rng.sample(FILLER, 2), set()
        if rng.random() < 0.5:
            words += rng.sample(POSITIVE, 2)
            labels.add("praise")
        if rng.random() < 0.5 or not labels:
            words += rng.sample(NEGATIVE, 2)
            labels.add("complaint")
        if rng.random() < 0.4:
            words += rng.sample(list("abcdefghij"), 2)
            labels.add("letters")
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "labels": sorted(labels)})
    return rows


def test_multilabel_tunes_thresholds_and_predicts_label_lists(tiny_bert_std, tmp_path):
    data = splits(tmp_path, toy_rows)
    run = enctune.train(data=str(data), out=str(tmp_path / "run"), model=str(tiny_bert_std), **FULL)
    m = run.metrics
    assert m["task"] == "multilabel" and "column 'labels' holds lists" in m["task_reason"]
    assert m["test"]["micro_f1"] >= 0.8 and set(m["test"]["per_label"]) == {"complaint", "letters", "praise"}
    thresholds = m["fitted_on_validation"]["thresholds"]
    assert set(thresholds) == {"complaint", "letters", "praise"} and all(0 < t < 1 for t in thresholds.values())
    preds = roundtrip(run, tmp_path / "run", ["good great the film", "bad awful a b"])
    assert all(p["labels"] for p in preds)  # at least one label: every train row had one


def test_multilabel_metrics_and_threshold_tuning():
    t = MultilabelTask(["a", "b"], at_least_one=False)
    t.thresholds = np.array([0.5, 0.5])
    logits = np.array([[2.0, -2.0], [2.0, 2.0], [-2.0, -2.0]])
    y = np.array([[1, 0], [1, 0], [0, 1]])
    m = t.metrics(logits, y)
    # predicted: {a}, {a, b}, {} vs gold {a}, {a}, {b}: tp 2, fp 1, fn 1 -> micro F1 2/3
    assert m["micro_f1"] == pytest.approx(2 / 3) and m["exact_match"] == pytest.approx(1 / 3)
    assert m["per_label"]["a"]["f1"] == 1.0 and m["per_label"]["b"]["f1"] == 0.0
    t.at_least_one = True  # the empty third row now gets its most likely label (a tie: the first, a)
    assert t.predict_matrix(logits)[2].tolist() == [True, False]
    # a label whose positives all score low: tuning moves its threshold below them
    probs = np.array([[0.9, 0.2], [0.1, 0.15], [0.8, 0.05]])
    tuned = t.tune_thresholds(np.log(probs / (1 - probs)), np.array([[1, 1], [0, 1], [1, 0]]))
    assert tuned[1] <= 0.15 and tuned[1] > 0.05 and 0.1 < tuned[0] <= 0.8


def test_empty_label_list_names_the_row(tiny_bert_std, tmp_path):
    rows = toy_rows(20, 0)
    rows[2]["labels"] = []
    fails(tiny_bert_std, tmp_path, rows, r"line 3; found: \[\]\). Expected a non-empty list of labels")
