"""bench.fewshot, the few-shot suite: its samples, tool names, summary and the committed label descriptions."""

from __future__ import annotations

import json

import pytest

from bench.fewshot import (
    DATASETS,
    DESCRIPTIONS,
    TOOLS,
    descriptions,
    labelled_rows,
    scored_rows,
    split_tool,
    summarize,
)
from enctune.strategies.labels import parse_descriptions


def test_multi_label_rows_keep_their_single_label_ones():
    rows = [{"text": "a", "labels": ["joy"]}, {"text": "b", "labels": ["joy", "love"]}, {"text": "c", "labels": ["fear"]}]
    assert labelled_rows(rows) == [{"text": "a", "label": "joy"}, {"text": "c", "label": "fear"}]
    assert labelled_rows([{"text": "x", "label": 3}]) == [{"text": "x", "label": "3"}]


def test_the_scored_test_rows_are_whole_up_to_the_limit_and_the_same_seeded_prefix_above():
    rows = [{"text": str(i), "label": "a"} for i in range(50)]
    assert scored_rows(rows, 50) == rows and scored_rows(rows, None) == rows
    small, smaller = scored_rows(rows, 20), scored_rows(rows, 10)
    assert len(small) == 20 and small[:10] == smaller and small != rows[:20]
    assert small == scored_rows(rows, 20)


def test_tool_names_carry_settings_for_ablations():
    assert split_tool("enctune_fewshot@head_solver=sgd;fewshot_pairs=64") == (
        "enctune_fewshot", {"head_solver": "sgd", "fewshot_pairs": 64})
    assert split_tool("enctune_fewshot+labels") == ("enctune_fewshot+labels", {})
    with pytest.raises(ValueError, match="key=value"):
        split_tool("enctune_fewshot@sgd")
    assert {"setfit", "st_lr", "enctune_fewshot", "enctune_fewshot+labels", "enctune_auto"} <= set(TOOLS)


def test_every_dataset_has_descriptions_that_enctune_reads():
    table = json.loads(DESCRIPTIONS.read_text())
    for ds in DATASETS:
        parsed = parse_descriptions(descriptions(ds))
        assert len(parsed) >= 2 and all(parsed.values()), ds  # every label named and described
    assert len(parse_descriptions(table["goemotions"])) == 28
    with pytest.raises(KeyError):
        descriptions("no_such_set")


def _run(ds, tool, seed, acc, wall=10.0, status="ok"):
    return {"dataset": ds, "shots": 8, "tool": tool, "seed": seed, "status": status, "test_accuracy": acc,
            "wall_seconds": wall}


def test_the_average_covers_only_datasets_every_tool_finished_at_the_same_seeds():
    runs = [_run("a", "x", 0, 0.5), _run("a", "y", 0, 0.7), _run("a", "x", 1, 0.7), _run("a", "y", 1, 0.9),
            _run("b", "x", 0, 0.2), _run("b", "y", 0, 0.4, status="failed")]
    s = summarize(runs, ["a", "b"], [8], ["x", "y"])["8"]
    assert s["datasets"]["a"]["x"]["test_accuracy"] == pytest.approx(0.6)
    assert s["datasets"]["a"]["y"]["test_accuracy_std"] == pytest.approx(0.1414, abs=1e-4)
    assert s["datasets"]["b"]["y"]["runs"] == 0
    assert s["average"]["x"]["datasets"] == ["a"]  # b is left out: y has no finished run there
    assert s["average"]["y"]["test_accuracy"] == pytest.approx(0.8)


def test_parts_of_a_suite_merge_into_one_report(tmp_path):
    from bench.fewshot import main

    part = {"command": "python -m bench.fewshot --seeds 0", "datasets": ["a"], "shots": [8], "seeds": [0],
            "tools": ["x", "y"], "sizes": {"a/8": {"train": 16}},
            "runs": [_run("a", "x", 0, 0.5), _run("a", "y", 0, 0.7)]}
    later = {**part, "command": "python -m bench.fewshot --seeds 1", "seeds": [1], "datasets": ["a", "b"],
             "runs": [_run("a", "x", 1, 0.7), _run("a", "y", 1, 0.9), _run("b", "x", 1, 0.1)]}
    files = []
    for i, p in enumerate((part, later)):
        files.append(tmp_path / f"{i}.json")
        files[-1].write_text(json.dumps(p))
    out = tmp_path / "out"
    assert main(["--datasets", "", "--tools", "", "--merge", ",".join(map(str, files)), "--out", str(out)]) == 0
    merged = json.loads((out / "results.json").read_text())
    assert merged["seeds"] == [0, 1] and merged["datasets"] == ["a", "b"] and len(merged["all_runs"]) == 5
    assert merged["summary"]["8"]["datasets"]["a"]["y"]["test_accuracy"] == pytest.approx(0.8)
    md = (out / "results.md").read_text()
    assert "--seeds 0` (merged)" in md and "| a (seeds 0, 1) | 0.600 ± 0.141" in md and "| b (seed 1) | 0.100 (" in md
