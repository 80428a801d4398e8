"""Self-training: per-class thresholds, class balance, and the rounds a run keeps."""

import json

import numpy as np
import pytest

from enctune.cli import main
from enctune.selftrain import margin, pseudo_labels

from .conftest import make_rows, write_jsonl


def test_each_class_has_its_own_threshold_and_the_labelled_balance_is_kept():
    probs = np.array([[0.99, 0.01], [0.95, 0.05], [0.90, 0.10], [0.80, 0.20], [0.70, 0.30], [0.60, 0.40],
                      [0.40, 0.60], [0.30, 0.70]])
    rows, classes, thresholds = pseudo_labels(probs, np.array([1.0, 1.0]))
    # class 0: six texts, median 0.85 -> four candidates; class 1: two texts, median 0.65 -> one; balance: one each
    assert thresholds == [pytest.approx(0.85), pytest.approx(0.65)]
    assert rows.tolist() == [0, 7] and classes.tolist() == [0, 1]
    rows, classes, _ = pseudo_labels(probs, np.array([3.0, 1.0]))  # three to one in the labelled examples
    assert rows.tolist() == [0, 1, 2, 7] and classes.tolist() == [0, 0, 0, 1]


def test_the_margin_is_the_standard_error_of_the_labelled_only_score():
    assert margin(0.846154, 13) == pytest.approx(0.1001, abs=1e-4)  # one text in 13 is 0.077
    assert margin(0.9, 900) == pytest.approx(0.01)
    assert margin(1.0, 13) == 0.0  # a perfect score leaves no room


def test_no_pseudo_labels_when_a_labelled_class_gets_no_text():
    probs = np.array([[0.9, 0.1], [0.8, 0.2]])
    rows, classes, _ = pseudo_labels(probs, np.array([1.0, 1.0]))
    assert len(rows) == 0 and len(classes) == 0


def test_a_run_with_unlabelled_texts_records_every_round(tiny_bert, tmp_path, capsys):
    d = tmp_path / "data"
    write_jsonl(d / "train.jsonl", make_rows(60, seed=1))
    write_jsonl(d / "validation.jsonl", make_rows(40, seed=2))
    write_jsonl(d / "test.jsonl", make_rows(40, seed=3))
    pool = write_jsonl(tmp_path / "pool.jsonl", [{"text": r["text"]} for r in make_rows(80, seed=9)])
    code = main(["train", "--data", str(d), "--model", str(tiny_bert), "--strategy", "full", "--epochs", "2",
                 "--unlabelled", str(pool), "--self-training-rounds", "2", "--out", str(tmp_path / "run"),
                 "--precision", "fp32"])
    assert code == 0
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    st = m["self_training"]
    rounds = st["rounds"]
    assert st["pool"] == 80 and rounds[0]["status"] == "labelled only" and rounds[0]["trained_on"] == 60
    # a kept first student teaches a second round; one not kept ends self-training
    assert len(rounds) - 1 == (2 if rounds[1]["status"] == "kept" else 1)
    first = rounds[1]
    if "pseudo_labelled" in first:
        assert first["trained_on"] == 60 + first["pseudo_labelled"] and first["strategy"] == "full"
        assert st["judged"] and (first["status"] == "kept") == (first["validation"] >= st["floor"])
    assert st["floor"] == pytest.approx(rounds[0]["validation"] - margin(rounds[0]["validation"], 40), abs=1e-6)
    kept = rounds[st["kept_round"]]
    assert m["validation"]["accuracy"] == pytest.approx(kept["validation"], abs=1e-6)  # the run is the kept round
    assert m["data"]["sizes"]["train"] == kept["trained_on"]
    assert "self-training on 80 unlabelled texts" in capsys.readouterr().out


def test_self_training_is_refused_where_labels_are_not_classes(tiny_bert, tmp_path, capsys):
    rows = [{"text": r["text"], "label": float(i % 5)} for i, r in enumerate(make_rows(40))]
    data = write_jsonl(tmp_path / "scores.jsonl", rows)
    pool = write_jsonl(tmp_path / "pool.jsonl", [{"text": "good"}])
    assert main(["train", "--data", str(data), "--model", str(tiny_bert), "--task", "regress", "--unlabelled",
                 str(pool), "--out", str(tmp_path / "run")]) == 2
    assert "not classes" in capsys.readouterr().err



def test_a_validation_split_carved_from_few_rows_judges_no_student(tiny_bert, tmp_path):
    data = write_jsonl(tmp_path / "few.jsonl", make_rows(40, seed=3))  # 4 validation rows carved from 40
    pool = write_jsonl(tmp_path / "pool.jsonl", [{"text": r["text"]} for r in make_rows(60, seed=9)])
    assert main(["train", "--data", str(data), "--model", str(tiny_bert), "--strategy", "full", "--epochs", "1",
                 "--unlabelled", str(pool), "--out", str(tmp_path / "run"), "--precision", "fp32", "--quiet"]) == 0
    st = json.loads((tmp_path / "run" / "metrics.json").read_text())["self_training"]
    assert not st["judged"] and len(st["rounds"]) == 2  # one round by default
    if "pseudo_labelled" in st["rounds"][1]:
        assert st["rounds"][1]["status"] == "kept: validation too small to judge" and st["kept_round"] == 1
