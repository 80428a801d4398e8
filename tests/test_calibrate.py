"""Temperature scaling, calibration error, abstention, and calibrated runs end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

import enctune
from enctune.calibrate import UNSURE, abstain, ece, fit_temperature, nll, reliability, softmax
from enctune.cli import main

from .conftest import make_rows, write_jsonl


def _sample(n=20000, classes=3, true_t=1.0, scale=3.0, seed=0):
    """Logits whose labels are drawn from softmax(logits / true_t): perfectly calibrated at T = true_t."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, classes)) * scale
    p = softmax(z / true_t)
    y = np.array([rng.choice(classes, p=row) for row in p])
    return z, y


def test_fit_temperature_recovers_the_true_temperature():
    z, y = _sample(true_t=2.5)
    t = fit_temperature(z, y)
    assert abs(t - 2.5) < 0.15
    assert nll(z, y, t) < nll(z, y, 1.0)


def test_scaling_halves_the_calibration_error_of_an_overconfident_model():
    z, y = _sample(true_t=3.0)  # the model's logits are three times too sharp
    before = ece(softmax(z), y)
    t = fit_temperature(z, y)
    after = ece(softmax(z / t), y)
    assert before > 0.1 and after < before / 2
    # the arg-max (so accuracy) does not move
    assert (softmax(z).argmax(-1) == softmax(z / t).argmax(-1)).all()


def test_reliability_bins_add_up_by_hand():
    probs = np.array([[0.95, 0.05], [0.9, 0.1], [0.6, 0.4], [0.45, 0.55]])
    y = np.array([0, 1, 0, 1])
    r = reliability(probs, y, n_bins=10)
    assert sum(b["count"] for b in r["bins"]) == 4
    # bins: (0.5,0.6] holds 0.6 (right) and 0.55 (right); (0.8,0.9] holds 0.9 (wrong); (0.9,1] 0.95 (right)
    expected = 2 / 4 * abs(1.0 - 0.575) + 1 / 4 * abs(0.0 - 0.9) + 1 / 4 * abs(1.0 - 0.95)
    assert r["ece"] == pytest.approx(expected)


def test_abstain_below_a_confidence():
    preds = [{"label": "a", "probabilities": {"a": 0.55, "b": 0.45}},
             {"label": "b", "probabilities": {"a": 0.1, "b": 0.9}}]
    out = abstain(preds, 0.6)
    assert out[0]["label"] == UNSURE and out[0]["best_guess"] == "a" and out[1]["label"] == "b"
    assert abstain(preds, None) is preds


def _train(tiny_bert, sentiment_dir, out, *extra):
    return main(["train", "--data", str(sentiment_dir), "--out", str(out), "--model", str(tiny_bert),
                 "--strategy", "probe", "--epochs", "30", "--lr", "3e-2", "--batch-size", "8", "--quiet", *extra])


def test_a_run_is_calibrated_and_predictions_use_the_temperature(tiny_bert, sentiment_dir, tmp_path):
    out = tmp_path / "run"
    assert _train(tiny_bert, sentiment_dir, out) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    cal = metrics["calibration"]
    t = json.loads((out / "model" / "enctune.json").read_text())["temperature"]
    assert cal["temperature"] == t and t > 0
    for split in ("validation", "test"):
        assert {"ece_before", "ece_after", "nll_before", "nll_after"} <= set(cal[split])
        assert sum(b["count"] for b in cal[split]["reliability_after"]) == metrics["data"]["sizes"][split]
    # NLL on validation cannot get worse: T = 1 was among the candidates
    assert cal["validation"]["nll_after"] <= cal["validation"]["nll_before"] + 1e-6

    texts = [r["text"] for r in make_rows(6, seed=5)]
    pred = enctune.load(out)
    raw = pred.model.head(pred.model.encoder(**pred.encoder.collate(pred.encoder.tokenize(texts), range(6))))
    np.testing.assert_allclose(pred.predict_proba(texts), softmax(raw.detach().numpy() / t), rtol=1e-4, atol=1e-6)


def test_no_calibrate_keeps_raw_probabilities(tiny_bert, sentiment_dir, tmp_path):
    out = tmp_path / "run"
    assert _train(tiny_bert, sentiment_dir, out, "--no-calibrate") == 0
    assert "calibration" not in json.loads((out / "metrics.json").read_text())
    assert "temperature" not in json.loads((out / "model" / "enctune.json").read_text())


def test_predict_abstain_below(tiny_bert, sentiment_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(tiny_bert, sentiment_dir, out) == 0
    capsys.readouterr()
    assert main(["predict", str(out), "good great", "bad awful", "--abstain-below", "1.0", "--json"]) == 0
    preds = json.loads(capsys.readouterr().out)
    assert [p["label"] for p in preds] == [UNSURE, UNSURE] and all("best_guess" in p for p in preds)
    inp = write_jsonl(tmp_path / "in.jsonl", [{"text": "good great"}])
    assert main(["predict", str(out), "--input", str(inp), "--abstain-below", "0.01", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["label"] in ("positive", "negative")
    assert main(["predict", str(out), "good", "--abstain-below", "1.5"]) == 2
    assert "--abstain-below 1.5" in capsys.readouterr().err


def test_a_temperature_chosen_by_a_handful_of_validation_rows_is_not_kept(tiny_bert, sentiment_dir, tmp_path,
                                                                          capsys):
    few = write_jsonl(tmp_path / "few.jsonl", make_rows(10, seed=7))
    out = tmp_path / "run"
    assert main(["train", "--data", str(sentiment_dir / "train.jsonl"), "--validation", str(few), "--out", str(out),
                 "--model", str(tiny_bert), "--strategy", "probe", "--epochs", "30", "--lr", "3e-2",
                 "--batch-size", "8"]) == 0
    cal = json.loads((out / "metrics.json").read_text())["calibration"]
    assert cal["kept"] is False and "10 rows, too few" in cal["why_not_kept"]
    assert "temperature" not in json.loads((out / "model" / "enctune.json").read_text())
    assert "no temperature kept: validation has 10 rows" in capsys.readouterr().out
