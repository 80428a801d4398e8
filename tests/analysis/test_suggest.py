"""Active learning: `enctune suggest` (uncertainty + diversity) and `enctune train --add`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from enctune.analysis.suggest import select, uncertainty
from enctune.cli import main

from ..conftest import make_rows, write_jsonl


def test_uncertainty_scores():
    probs = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.6, 0.3, 0.1]])
    np.testing.assert_allclose(uncertainty(probs, "margin"), [1.0, 0.0, 0.7])
    ent = uncertainty(probs, "entropy")
    np.testing.assert_allclose(ent, [np.log(2) / np.log(3), 0.0, 0.8173454], atol=1e-6)


def test_select_spreads_picks_over_near_duplicates():
    # 10 near-copies of one uncertain text, and 10 distinct texts only a little less uncertain
    rng = np.random.default_rng(0)
    base = rng.normal(size=16)
    emb = np.vstack([base + 1e-3 * rng.normal(size=(10, 16)), rng.normal(size=(10, 16))])
    scores = np.concatenate([np.full(10, 0.99), np.full(10, 0.9)])
    only_uncertain = select(scores, emb, 5, factor=1)
    assert set(only_uncertain) <= set(range(10))  # all near-duplicates
    diverse = select(scores, emb, 5, factor=4)
    assert diverse[0] == 0 and sum(i < 10 for i in diverse) == 1 and len(set(diverse)) == 5


@pytest.fixture
def small_run(tiny_bert, tmp_path):
    d = tmp_path / "data"
    write_jsonl(d / "train.jsonl", make_rows(40, seed=1))
    write_jsonl(d / "validation.jsonl", make_rows(20, seed=2))
    write_jsonl(d / "test.jsonl", make_rows(20, seed=3))
    out = tmp_path / "run"
    assert main(["train", "--data", str(d), "--out", str(out), "--model", str(tiny_bert), "--strategy", "probe",
                 "--epochs", "30", "--lr", "3e-2", "--batch-size", "8", "--quiet"]) == 0
    return d, out


def test_suggest_then_add_labelled_rows(small_run, tmp_path, tiny_bert, capsys):
    data, run = small_run
    pool = write_jsonl(tmp_path / "pool.jsonl", [{"text": r["text"], "id": i} for i, r in
                                                  enumerate(make_rows(60, seed=7))])
    to_label = tmp_path / "to_label.jsonl"
    assert main(["suggest", str(run), "--pool", str(pool), "--n", "8", "--out", str(to_label), "--quiet"]) == 0
    rows = [json.loads(x) for x in to_label.read_text().splitlines()]
    assert len(rows) == 8 and [r["rank"] for r in rows] == list(range(1, 9))
    assert all(r["label"] == "" and "id" in r and r["suggested_label"] in ("positive", "negative") for r in rows)
    assert len({r["id"] for r in rows}) == 8
    # unlabelled rows cannot be added: the error names the file and the line
    out2 = tmp_path / "run2"
    train_args = ["train", "--data", str(data), "--out", str(out2), "--model", str(tiny_bert), "--strategy", "probe",
                  "--epochs", "5", "--quiet"]
    assert main([*train_args, "--add", str(to_label)]) == 2
    assert str(to_label) in capsys.readouterr().err and not out2.exists()
    # label them (by the words they contain), add one row train already has, and train again
    truth = {r["text"]: r["label"] for r in make_rows(60, seed=7)}
    first = json.loads((data / "train.jsonl").read_text().splitlines()[0])
    labelled = write_jsonl(tmp_path / "labelled.jsonl", [{**r, "label": truth[r["text"]]} for r in rows] + [first])
    assert main([*train_args, "--add", str(labelled)]) == 0
    m = json.loads((out2 / "metrics.json").read_text())
    assert m["added"]["appended"] == 8 and m["added"]["skipped_already_in_train"] == 1
    before = json.loads((run / "metrics.json").read_text())["data"]["sizes"]
    assert m["data"]["sizes"]["train"] == before["train"] + 8 and m["data"]["sizes"]["test"] == before["test"]


def test_suggest_bad_input(small_run, tmp_path, capsys):
    _, run = small_run
    pool = write_jsonl(tmp_path / "pool.jsonl", [{"text": "good"}])
    assert main(["suggest", str(run), "--pool", str(pool), "--out", str(tmp_path / "x.csv")]) == 2
    assert main(["suggest", str(run), "--pool", str(pool), "--by", "luck", "--out", str(tmp_path / "x.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "expected a .jsonl file" in err and "--by 'luck'" in err and not (tmp_path / "x.jsonl").exists()
