"""Examples: two splits joined keep where each row came from only when both come from one table."""

from __future__ import annotations

from pathlib import Path

from enctune.data import Examples
from enctune.data.table import Table


def test_rows_of_one_table_joined_keep_their_lines():
    table = Table(Path("train.jsonl"), [{}, {}, {}], [1, 2, 3])
    a = Examples(["x", "y"], None, ["p", "n"], table, [0, 2])
    b = Examples(["z"], None, ["p"], table, [1])
    joined = a + b
    assert joined.texts == ["x", "y", "z"] and joined.labels == ["p", "n", "p"] and joined.pairs is None
    assert [joined.where(i) for i in range(3)] == ["train.jsonl, line 1", "train.jsonl, line 3", "train.jsonl, line 2"]


def test_rows_of_two_files_joined_say_example_numbers_and_keep_pairs():
    a = Examples(["x"], ["px"], ["p"], Table(Path("a.jsonl"), [{}], [1]), [0])
    b = Examples(["z"], ["pz"], ["n"], Table(Path("b.jsonl"), [{}], [1]), [0])
    joined = a + b
    assert joined.pairs == ["px", "pz"] and joined.table is None and joined.where(1) == "example 2"
