"""`--cv k`: stratified k-fold on train, mean and spread in metrics.json, the final model on all of train."""

from __future__ import annotations

import json

import numpy as np
import pytest

from enctune.cli import main

from .conftest import make_rows, write_jsonl


def test_cv_reports_mean_and_spread(tiny_bert, sentiment_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(sentiment_dir), "--out", str(out), "--model", str(tiny_bert),
                 "--strategy", "probe", "--epochs", "20", "--lr", "3e-2", "--cv", "3", "--quiet"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    cv = m["cv"]
    assert cv["folds"] == 3
    for name in ("accuracy", "macro_f1", "ece_uncalibrated", "ece_calibrated"):
        v = cv["metrics"][name]
        assert len(v["values"]) == 3
        assert v["mean"] == pytest.approx(np.mean(v["values"]), abs=2e-6)
        assert v["std"] == pytest.approx(np.std(v["values"], ddof=1), abs=2e-6)
    assert all(0 <= x <= 1 for x in cv["metrics"]["accuracy"]["values"])
    assert m["data"]["sizes"]["train"] == 120  # the final model trained on all of train
    assert "cross-validation" in (out / "report.html").read_text()


def test_cv_needs_enough_examples_per_label(tiny_bert, sentiment_dir, tmp_path, capsys):
    rows = make_rows(30)
    rows[0]["label"] = "neutral"
    rows[1]["label"] = "neutral"
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    code = main(["train", "--data", str(data), "--validation", str(sentiment_dir / "validation.jsonl"),
                 "--out", str(tmp_path / "r"), "--model", str(tiny_bert), "--strategy", "probe", "--cv", "3",
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "--cv 3: label 'neutral' has only 2" in err and "needs at least 3 per label" in err
    assert not (tmp_path / "r").exists()
    assert main(["train", "--data", str(sentiment_dir), "--out", str(tmp_path / "r"), "--cv", "1", "--quiet"]) == 2
