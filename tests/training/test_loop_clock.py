"""The loop's clock in metrics.json: costs give the training time before each evaluation of the history
(evaluations apart) and how old the process was when the loop began; time-to-accuracy curves are read from the
two. The history itself stays free of times: the same seed gives the same history."""

from __future__ import annotations

import enctune

FULL = {"strategy": "full", "epochs": 2, "batch_size": 16, "lr": 3e-3, "precision": "fp32", "eval_every": 3}


def test_history_carries_training_seconds_without_the_evaluations(tiny_bert, sentiment_dir, tmp_path):
    m = enctune.train(data=str(sentiment_dir), out=str(tmp_path / "run"), model=str(tiny_bert), **FULL).metrics
    seconds = m["costs"]["history_seconds"]
    assert len(seconds) == len(m["history"]) > 2 and seconds[0] > 0
    assert all("seconds" not in k for h in m["history"] for k in h)
    assert all(b > a for a, b in zip(seconds, seconds[1:], strict=False))
    costs = m["costs"]
    # the last evaluation comes after every step: its clock is the loop's, less the evaluations
    assert seconds[-1] <= costs["train_seconds"] - costs["eval_seconds"] + 0.05
    assert 0 < costs["loop_started_at"] < costs["phases"]["total"]
