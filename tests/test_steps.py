"""The steps of a run that api.train strings together: --repeats (the spread over seeds, the best kept) and
config.json (the settings a run used, with what the config left open resolved)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import enctune
from enctune.cli import main

FULL = {"strategy": "full", "epochs": 2, "batch_size": 16, "lr": 3e-3, "precision": "fp32"}


def test_repeats_report_the_spread_and_keep_the_best_seed(tiny_bert, sentiment_dir, tmp_path):
    run = enctune.train(data=str(sentiment_dir), out=str(tmp_path / "r"), model=str(tiny_bert), repeats=3, seed=5,
                        **FULL)
    reps = run.metrics["repeats"]
    assert reps["seeds"] == [5, 6, 7]
    val = reps["validation"]["accuracy"]
    assert len(val["values"]) == 3
    assert val["mean"] == pytest.approx(np.mean(val["values"]), abs=1e-6)
    assert val["std"] == pytest.approx(np.std(val["values"], ddof=1), abs=1e-6)
    best = max(val["values"])
    assert reps["kept_seed"] == 5 + val["values"].index(best)  # the first seed with the best validation score
    assert run.metrics["validation"]["accuracy"] == pytest.approx(best, abs=1e-6)
    assert run.metrics["test"]["accuracy"] == pytest.approx(reps["test"]["accuracy"]["values"][reps["kept_seed"] - 5],
                                                            abs=1e-6)
    assert json.loads((tmp_path / "r" / "config.json").read_text())["seed"] == reps["kept_seed"]
    # a repeat is a run of its own seed: the same figures as a plain run with that seed
    alone = enctune.train(data=str(sentiment_dir), out=str(tmp_path / "s"), model=str(tiny_bert), seed=6, **FULL)
    assert alone.metrics["validation"]["accuracy"] == pytest.approx(val["values"][1], abs=1e-6)


def test_the_cli_prints_the_spread(tiny_bert, sentiment_dir, tmp_path, capsys):
    code = main(["train", "--data", str(sentiment_dir), "--out", str(tmp_path / "r"), "--model", str(tiny_bert),
                 "--strategy", "probe", "--repeats", "2"])
    out = capsys.readouterr()
    assert code == 0 and "test accuracy over 2 seeds:" in out.out + out.err


@pytest.mark.parametrize("strategy, resolved", [
    ("full", {"epochs": int, "lr": float, "batch_size": int}),
    ("probe", {"head_solver": "lbfgs"}),
    ("fewshot", {"fewshot_pairs": int, "epochs": int}),
])
def test_config_json_holds_the_settings_the_run_used(strategy, resolved, tiny_bert, sentiment_dir, tmp_path):
    out = tmp_path / "r"
    enctune.train(data=str(sentiment_dir), out=str(out), model=str(tiny_bert), strategy=strategy, epochs=1,
                  batch_size=32 if strategy != "probe" else None, precision="fp32")
    config = json.loads((out / "config.json").read_text())
    assert config["strategy"] == strategy and config["task"] == "classify" and config["precision"] == "fp32"
    assert config["pooling"] == "mean" and isinstance(config["max_length"], int)
    assert config["text_column"] == "text" and config["label_column"] == "label"  # the columns found
    assert config["validation"].endswith("validation.jsonl") and config["test"].endswith("test.jsonl")
    for key, want in resolved.items():
        assert config[key] is not None and (isinstance(config[key], want) if isinstance(want, type)
                                            else config[key] == want), key
