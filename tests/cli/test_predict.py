"""enctune predict on a file: the run's own text column found, the input's other columns carried beside each
prediction, and the output written as JSON lines, CSV or Parquet."""

from __future__ import annotations

import csv
import json

import pytest

from enctune.cli import main

from ..conftest import make_rows, write_jsonl


@pytest.fixture(scope="module")
def run(tiny_bert_std, tmp_path_factory):
    d = tmp_path_factory.mktemp("predict")
    rows = [{"review": r["text"], "stars": r["label"]} for r in make_rows(80, seed=1)]
    write_jsonl(d / "train.jsonl", rows)
    assert main(["train", "--data", str(d / "train.jsonl"), "--text-column", "review", "--label-column", "stars",
                 "--out", str(d / "run"), "--model", str(tiny_bert_std), "--strategy", "probe", "--quiet"]) == 0
    return d / "run"


@pytest.fixture
def inputs(tmp_path):
    """A CSV with an id, the text under the run's column name, a decoy 'text' column, and metadata."""
    path = tmp_path / "in.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "review", "source"])
        for i, r in enumerate(make_rows(6, seed=4)):
            w.writerow([f"r{i}", "a title", r["text"], "web"])
    return path


def test_csv_output_carries_the_other_columns_beside_the_prediction(run, inputs, tmp_path):
    out = tmp_path / "p.csv"
    assert main(["predict", str(run), "--input", str(inputs), "--output", str(out), "-q"]) == 0
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(6)] and rows[0]["source"] == "web"
    assert "review" not in rows[0] and rows[0]["text"] == "a title"  # the run's column was the text; 'text' is data
    assert rows[0]["label"] in ("positive", "negative")
    p = float(rows[0]["probabilities_positive"]) + float(rows[0]["probabilities_negative"])
    assert p == pytest.approx(1, abs=1e-5)


def test_include_text_and_parquet(run, inputs, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "p.parquet"
    assert main(["predict", str(run), "--input", str(inputs), "--output", str(out), "--include-text", "-q"]) == 0
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == 6 and rows[2]["review"] == make_rows(6, seed=4)[2]["text"] and rows[2]["id"] == "r2"


def test_an_input_column_named_like_the_prediction_is_kept_aside(run, tmp_path):
    src = write_jsonl(tmp_path / "gold.jsonl", [{"review": r["text"], "label": r["label"]} for r in make_rows(4)])
    out = tmp_path / "p.jsonl"
    assert main(["predict", str(run), "--input", str(src), "--output", str(out), "-q"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["input_label"] for r in rows] == [r["label"] for r in make_rows(4)]
    assert all(r["label"] in ("positive", "negative") for r in rows)


def test_an_unknown_output_format_fails_before_predicting(run, inputs, tmp_path, capsys):
    assert main(["predict", str(run), "--input", str(inputs), "--output", str(tmp_path / "p.xlsx")]) == 2
    err = capsys.readouterr().err
    assert ".xlsx" in err and ".parquet" in err and "Traceback" not in err
    assert not (tmp_path / "p.xlsx").exists()
