"""Every registered task, end to end, on a tiny random encoder: its toy data is detected as the task, a
run trains on it, and the saved folder scores and predicts exactly as the run did; sequence-level tasks
also through a causal encoder. A task's toy data is ``toy_rows(n, seed)`` in its own test module
(``tests/tasks/test_<name>.py``): adding a task is its module and that test file."""

from __future__ import annotations

import importlib
import json
import math

import pytest

import enctune
from enctune.data import read_table
from enctune.tasks import TASKS, detect_task

from ..conftest import write_jsonl
from .helpers import FULL, splits


def toy_rows(name: str):
    try:
        return importlib.import_module(f"{__package__}.test_{name}").toy_rows
    except (ImportError, AttributeError):
        pytest.fail(f"task '{name}' has no toy data: tests/tasks/test_{name}.py must define toy_rows(n, seed)")


def causal_settings(name: str) -> dict:
    """What a task's test module asks beyond FULL for the tiny causal encoder (``CAUSAL_SETTINGS``): a ranking
    loss over in-batch documents moves its last-token vectors more slowly than a classifier's."""
    return getattr(importlib.import_module(f"{__package__}.test_{name}"), "CAUSAL_SETTINGS", {})


@pytest.mark.parametrize("name", sorted(TASKS))
def test_its_toy_data_is_detected_as_the_task(name, tmp_path):
    table = read_table(write_jsonl(tmp_path / "train.jsonl", toy_rows(name)(60, 0)))
    assert detect_task(table)[0] == name


@pytest.mark.parametrize("name", sorted(TASKS))
def test_train_save_load_and_score_the_same(name, tiny_bert_std, tmp_path):
    data = splits(tmp_path, toy_rows(name), n=(96, 32, 32))
    run = enctune.train(data=str(data), out=str(tmp_path / "run"), model=str(tiny_bert_std), task=name,
                        **{**FULL, "epochs": 3})
    primary = run.metrics["primary_metric"]
    assert run.metrics["task"] == name and math.isfinite(run.metrics["test"][primary])
    reloaded = enctune.evaluate(tmp_path / "run", data / "test.jsonl")
    assert reloaded[primary] == pytest.approx(run.metrics["test"][primary], abs=1e-9)
    preds = enctune.predict_file(tmp_path / "run", data / "test.jsonl")
    assert len(preds) == 32 and all(isinstance(p, dict) and p for p in preds)
    json.dumps(preds, allow_nan=False)  # plain JSON, no NaN


@pytest.mark.parametrize("name", sorted(n for n, t in TASKS.items() if t.level == "sequence"))
def test_sequence_tasks_train_on_a_causal_encoder_with_last_token_pooling(name, tiny_gpt2_std, tmp_path):
    data = splits(tmp_path, toy_rows(name))
    run = enctune.train(data=str(data), out=str(tmp_path / "run"), model=str(tiny_gpt2_std), task=name,
                        **{**FULL, **causal_settings(name)})
    meta = json.loads((tmp_path / "run" / "model" / "enctune.json").read_text())
    assert meta["pooling"] == "last"
    assert run.metrics["test"][run.metrics["primary_metric"]] >= 0.6
    reloaded = enctune.evaluate(tmp_path / "run", data / "test.jsonl")
    assert reloaded[run.metrics["primary_metric"]] == pytest.approx(run.metrics["test"][run.metrics["primary_metric"]])
