"""``extract``: answer spans in a context, from JSONL or nested SQuAD JSON; SQuAD normalisation and scores."""

from __future__ import annotations

import json
import random

import pytest

import enctune
from enctune.tasks.extract import exact_match, f1_score, normalize_answer, squad_scores

from ..conftest import FILLER, POSITIVE
from .helpers import FULL, fails, roundtrip, splits


def toy_rows(n, seed):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        before = " ".join(rng.choices(FILLER, k=rng.randint(1, 6)))
        answer = rng.choice(POSITIVE)
        after = " ".join(rng.choices(FILLER, k=rng.randint(1, 6)))
        context = f"{before} {answer} {after}"
        rows.append({"id": f"q{i}", "question": "the plot", "context": context,
                     "answers": {"text": [answer], "answer_start": [len(before) + 1]}})
    return rows


def test_extract_finds_answer_spans(tiny_bert_std, tmp_path):
    data = splits(tmp_path, toy_rows)
    run = enctune.train(data=str(data), out=str(tmp_path / "run"), model=str(tiny_bert_std), max_length=24,
                        doc_stride=8, **FULL)
    m = run.metrics
    assert m["task"] == "extract" and "question" in m["task_reason"]
    assert m["test"]["f1"] >= 70 and 0 <= m["test"]["exact_match"] <= 100
    ctx = "the film was good great and it was a movie"
    preds = roundtrip(run, tmp_path / "run", ["the plot"], [ctx])
    p = preds[0]
    assert ctx[p["start"]:p["end"]] == p["answer"] and p["answer"]


def test_extract_reads_nested_squad_json(tiny_bert_std, tmp_path):
    def nested(rows):
        return {"version": "1.1", "data": [{"title": "t", "paragraphs": [
            {"context": r["context"], "qas": [{"id": r["id"], "question": r["question"],
                                                "answers": [{"text": r["answers"]["text"][0],
                                                             "answer_start": r["answers"]["answer_start"][0]}]}]}
            for r in rows]}]}

    d = tmp_path / "squad"
    d.mkdir()
    (d / "train.json").write_text(json.dumps(nested(toy_rows(40, 1))))
    (d / "validation.json").write_text(json.dumps(nested(toy_rows(12, 2))))
    run = enctune.train(data=str(d), out=str(tmp_path / "run"), model=str(tiny_bert_std), epochs=1, strategy="full")
    assert run.metrics["task"] == "extract" and run.metrics["data"]["sizes"]["train"] == 40


def test_squad_normalisation_exact_match_and_f1():
    assert normalize_answer("The  Eiffel, Tower!") == "eiffel tower"
    assert exact_match("the Eiffel Tower", "Eiffel tower.") == 1.0
    # pred tokens {in, paris, france}, gold {paris}: precision 1/3, recall 1 -> F1 0.5
    assert f1_score("in Paris, France", "Paris") == pytest.approx(0.5)
    assert f1_score("London", "Paris") == 0.0
    s = squad_scores(["Paris", "in 1889"], [["Paris", "the city of Paris"], ["1889"]])
    assert s["exact_match"] == pytest.approx(50.0)
    assert s["f1"] == pytest.approx(100 * (1.0 + 2 / 3) / 2)  # second: precision 1/2, recall 1 -> 2/3


def test_answer_offsets_that_miss_the_context_name_the_row(tiny_bert_std, tmp_path):
    rows = toy_rows(10, 0)
    rows[5]["answers"]["answer_start"] = [0]
    fails(tiny_bert_std, tmp_path, rows, r"line 6: the answer '.*' does not start at character 0")
