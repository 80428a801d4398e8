"""``regress``: numbers per text, restored to their units; a pair through a cosine head; correlations."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

import enctune
from enctune.tasks.regress import pearson, spearman

from ..conftest import FILLER, POSITIVE
from .helpers import FULL, fails, roundtrip, splits


def toy_rows(n, seed, pairs=False):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        k = rng.randint(0, 4)
        words = rng.sample(POSITIVE, k) + rng.sample(FILLER, 5 - k)
        rng.shuffle(words)
        row = {"text": " ".join(words), "label": k + rng.random() * 0.5}
        if pairs:
            row["text_pair"] = " ".join(rng.sample(POSITIVE, 2) + rng.sample(FILLER, 3))
        rows.append(row)
    return rows


@pytest.mark.parametrize("strategy", ["full", "probe"])
def test_regress_restores_units(strategy, tiny_bert_std, tmp_path):
    data = splits(tmp_path, toy_rows)
    kw = FULL if strategy == "full" else {"strategy": "probe", "epochs": 80, "lr": 3e-2, "batch_size": 16,
                                          "patience": 100}
    run = enctune.train(data=str(data), out=str(tmp_path / "run"), model=str(tiny_bert_std), **kw)
    m = run.metrics
    assert m["task"] == "regress" and m["test"]["spearman"] >= 0.6
    preds = roundtrip(run, tmp_path / "run", ["good great fine lovely the", "the film was a movie"])
    # outputs are in the targets' units (0 to 4.5), not standardised ones
    assert preds[0]["value"] > preds[1]["value"] and -1.0 < preds[1]["value"] < 5.5


def test_regress_pairs_are_encoded_apart_with_a_cosine_head(tiny_bert_std, tmp_path):
    data = splits(tmp_path, toy_rows, pairs=True)
    run = enctune.train(data=str(data), out=str(tmp_path / "run"), model=str(tiny_bert_std), **FULL)
    meta = json.loads((tmp_path / "run" / "model" / "enctune.json").read_text())
    assert meta["pair_mode"] == "bi"
    lo, hi = meta["task_options"]["shift"][0], meta["task_options"]["shift"][0] + meta["task_options"]["scale"][0]
    preds = roundtrip(run, tmp_path / "run", ["good great the", "film was it"], ["lovely fine a", "good fine it"])
    for p in preds:  # a cosine in [-1, 1] mapped to the train range
        assert lo - (hi - lo) - 1e-6 <= p["value"] <= hi + 1e-6
    # the probe caches each side's vectors and trains the projection alone
    probe = enctune.train(data=str(data), out=str(tmp_path / "probe"), model=str(tiny_bert_std), strategy="probe",
                          epochs=5)
    assert probe.metrics["costs"]["cache_hits"] == 0 and probe.metrics["costs"]["trainable_params"] == 32 * 32 + 32
    roundtrip(probe, tmp_path / "probe", ["good great the"], ["lovely fine a"])
    # cross mode on request: one input, linear head
    run2 = enctune.train(data=str(data), out=str(tmp_path / "run2"), model=str(tiny_bert_std), pair_mode="cross", **FULL)
    assert json.loads((tmp_path / "run2" / "model" / "enctune.json").read_text())["pair_mode"] == "cross"
    assert run2.metrics["test"]["spearman"] > 0.3


def test_correlations():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    assert pearson(a, 2 * a + 1) == pytest.approx(1.0)
    assert spearman(a, a ** 3) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    # ranks [1, 2, 3, 4] vs [2, 1, 4, 3]: d^2 = 4 -> 1 - 6*4/(4*15) = 0.6
    assert spearman(a, np.array([2.0, 1.0, 4.0, 3.0])) == pytest.approx(0.6)


def test_non_numeric_regression_target_names_the_row(tiny_bert_std, tmp_path):
    rows = toy_rows(30, 0)
    rows[7]["label"] = "high"
    fails(tiny_bert_std, tmp_path, rows, r"line 8; found: 'high'\). Expected a number", task="regress")
