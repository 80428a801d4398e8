"""Prediction rows written as JSON lines, CSV or Parquet: nested values flattened for the flat formats, the
format named by the extension, and nothing half-written when a write fails."""

from __future__ import annotations

import csv
import json

import pytest

from enctune.data.writers import flat, write_rows
from enctune.errors import UserError

ROWS = [{"id": 7, "label": "positive", "score": 0.9, "probabilities": {"positive": 0.9, "negative": 0.1}},
        {"id": 8, "label": "negative", "score": 0.8, "probabilities": {"positive": 0.2, "negative": 0.8},
         "entities": [{"type": "PER", "text": "Ann"}]}]


def test_flat_spreads_dicts_and_writes_lists_as_json():
    row = flat(ROWS[1])
    assert row["probabilities_negative"] == 0.8 and "probabilities" not in row
    assert json.loads(row["entities"]) == [{"type": "PER", "text": "Ann"}]


def test_jsonl_keeps_values_as_they_are(tmp_path):
    write_rows(tmp_path / "p.jsonl", ROWS)
    assert [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()] == ROWS


def test_csv_has_one_column_per_key_and_blanks_where_a_row_has_none(tmp_path):
    write_rows(tmp_path / "p.csv", ROWS)
    with open(tmp_path / "p.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["id", "label", "score", "probabilities_positive", "probabilities_negative", "entities"]
    assert rows[0]["entities"] == "" and float(rows[1]["probabilities_negative"]) == 0.8


def test_parquet_round_trips_through_pyarrow(tmp_path):
    import pyarrow.parquet as pq

    write_rows(tmp_path / "p.parquet", ROWS)
    table = pq.read_table(tmp_path / "p.parquet").to_pylist()
    assert [r["id"] for r in table] == [7, 8] and table[0]["probabilities_positive"] == pytest.approx(0.9)
    assert table[0]["entities"] is None


def test_an_unknown_format_is_refused_by_name(tmp_path):
    with pytest.raises(UserError, match=r"'\.xlsx'.*\.jsonl, \.ndjson, \.csv, \.parquet"):
        write_rows(tmp_path / "p.xlsx", ROWS)
    assert not (tmp_path / "p.xlsx").exists()


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    (tmp_path / "p.jsonl").write_text("old\n")
    with pytest.raises(TypeError):  # the second row cannot be written: the first must not land either
        write_rows(tmp_path / "p.jsonl", [{"a": 1}, {"a": object()}])
    assert (tmp_path / "p.jsonl").read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.jsonl"]
