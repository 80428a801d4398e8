"""--report-to: the trackers see the training curves and the scores, their logs end up in the run folder,
and a missing package or unknown tracker is a clear error before anything trains."""

from __future__ import annotations

import json

import pytest

import enctune
from enctune.cli import main
from enctune.errors import UserError
from enctune.tracking import parse_report_to

FULL = {"strategy": "full", "epochs": 2, "batch_size": 16, "lr": 3e-3, "precision": "fp32", "eval_every": 4}


def _scalars(logs) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found: dict[str, list[float]] = {}
    for events in logs.rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events.parent))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            found.setdefault(tag, []).extend(e.value for e in acc.Scalars(tag))
    return found


def test_parse_report_to_names_and_refuses():
    assert parse_report_to(None) == [] and parse_report_to("none") == []
    assert parse_report_to(" tensorboard , mlflow ") == ["tensorboard", "mlflow"]
    with pytest.raises(UserError, match="wandb: unknown tracker"):
        parse_report_to("tensorboard,wandb")


def test_a_missing_tracker_package_says_what_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(UserError, match=r"pip install mlflow-skinny"):
        parse_report_to("mlflow")


def test_tensorboard_logs_the_curves_and_scores_into_the_run_folder(tiny_bert, sentiment_dir, tmp_path):
    out = tmp_path / "run"
    run = enctune.train(data=str(sentiment_dir), out=str(out), model=str(tiny_bert), report_to="tensorboard", **FULL)
    marker = json.loads((out / "enctune-run.json").read_text())
    assert "logs" in marker["files"] and (out / "logs").is_dir()
    assert not list(tmp_path.glob(".run.logs-*"))  # the staging folder was moved in, not left beside
    scalars = _scalars(out / "logs")
    losses = next(v for k, v in scalars.items() if k.endswith("/loss"))
    lrs = next(v for k, v in scalars.items() if k.endswith("/lr"))
    assert len(losses) == run.metrics["costs"]["steps"] > 1  # one point per optimizer step
    assert len(set(lrs)) > 1  # the schedule moved
    evals = next(v for k, v in scalars.items() if k.endswith("/validation_accuracy"))
    assert len(evals) == len(run.metrics["history"])  # one point per evaluation
    assert scalars["test/accuracy"] == pytest.approx([run.metrics["test"]["accuracy"]])


def test_mlflow_records_params_and_metrics(tiny_bert, sentiment_dir, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "enctune-test")
    run = enctune.train(data=str(sentiment_dir), out=str(tmp_path / "run"), model=str(tiny_bert),
                        report_to="mlflow", **FULL)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("enctune-test")
    (found,) = client.search_runs([experiment.experiment_id])
    assert found.data.params["strategy"] == "full" and found.data.params["epochs"] == "2"
    assert found.data.metrics["test/accuracy"] == pytest.approx(run.metrics["test"]["accuracy"])
    loss_key = next(k for k in found.data.metrics if k.endswith("/loss"))
    assert len(client.get_metric_history(found.info.run_id, loss_key)) >= 4
    assert found.info.status == "FINISHED"


def test_an_unknown_tracker_fails_before_training(tiny_bert, sentiment_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--data", str(sentiment_dir), "--out", str(out), "--model", str(tiny_bert),
                 "--report-to", "comet", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "comet: unknown tracker" in err and "Traceback" not in err
    assert not out.exists()


def test_a_tracker_that_cannot_start_stops_the_run_before_it_trains(tiny_bert, sentiment_dir, tmp_path, monkeypatch,
                                                                     capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nosuchscheme://nowhere")
    out = tmp_path / "run"
    code = main(["train", "--data", str(sentiment_dir), "--out", str(out), "--model", str(tiny_bert),
                 "--report-to", "tensorboard,mlflow", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "--report-to mlflow: the tracker did not start" in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".run.logs-*"))
