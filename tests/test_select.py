"""auto on few examples: every candidate cross-validated on the user's rows, the best kept, the table shown."""

from __future__ import annotations

import pytest

import enctune
from enctune.cli import main
from enctune.config import make_config
from enctune.select import MAX_FOLDS, applies
from enctune.steps import read

from .conftest import make_rows, write_jsonl


@pytest.fixture
def few(tmp_path):
    """16 rows, 8 a class: the validation split carved from them holds 2."""
    rows = make_rows(40, seed=3)
    pos = [r for r in rows if r["label"] == "positive"][:8]
    neg = [r for r in rows if r["label"] == "negative"][:8]
    return write_jsonl(tmp_path / "few.jsonl", pos + neg)


def _splits(data, **kw):
    return read(make_config({"data": str(data), **kw}))


def test_cross_validation_chooses_only_where_validation_cannot(few, tmp_path):
    s = _splits(few)
    assert s.validation_carved and len(s.validation) == 2 and applies(s.task, s, make_config({"data": str(few)}))
    assert not applies(s.task, s, make_config({"data": str(few), "budget": "5m"}))  # the ladder decides then
    many = write_jsonl(tmp_path / "many.jsonl", make_rows(600, seed=4))
    s = _splits(many)
    assert len(s.validation) >= 50 and not applies(s.task, s, make_config({"data": str(many)}))


def test_auto_keeps_the_best_cross_validated_candidate_and_prints_the_table(few, tiny_bert, tmp_path, capsys):
    code = main(["train", "--data", str(few), "--model", str(tiny_bert), "--out", str(tmp_path / "run"),
                 "--precision", "fp32"])
    assert code == 0
    m = enctune.load(tmp_path / "run")  # a working model folder
    assert m.predict(["good"])[0]["label"] in ("positive", "negative")
    import json

    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    table = metrics["strategy_table"]
    scored = [r for r in table if "cv_mean" in r]
    assert {r["candidate"] for r in scored} >= {"probe", "probe --init-head labels", "fewshot"}
    kept = [r for r in table if r["status"].endswith("kept")]
    assert len(kept) == 1 and kept[0]["cv_mean"] == max(r["cv_mean"] for r in scored)
    assert metrics["strategy"] == kept[0]["strategy"] and "cross-validated" in metrics["strategy_reason"]
    assert all(r["folds"] == MAX_FOLDS == 3 for r in scored)  # 8 a class: at most 3 folds
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    for key, value in kept[0]["settings"].items():
        assert config[key] == value  # the kept candidate's settings are the run's
    out = capsys.readouterr().out
    assert "cv accuracy" in out and "kept" in out
    for r in scored:
        assert f"{r['cv_mean']:.4f}" in out


def test_advise_says_train_will_cross_validate_on_few_examples(few, tiny_bert):
    a = enctune.advise(data=str(few), model=str(tiny_bert))
    assert "cross-validates every candidate" in a["reason"] and "probe --init-head labels" in a["reason"]


def test_a_few_hundred_rows_keep_the_advisors_pick(tmp_path):
    rows = make_rows(400, seed=6)  # ~200 a class: the carved validation holds 40 rows, but the classes are not few
    data = write_jsonl(tmp_path / "reviews.jsonl", rows)
    s = _splits(data)
    assert len(s.validation) < 50 and not applies(s.task, s, make_config({"data": str(data)}))
