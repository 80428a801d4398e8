"""``tag``: a label per word from JSONL or CoNLL; entity spans; CoNLL chunk scoring."""

from __future__ import annotations

import json
import random

import pytest

import enctune
from enctune.cli import main
from enctune.errors import UserError
from enctune.tasks.tag import entities, entity_scores

from ..conftest import FILLER, NEGATIVE, POSITIVE
from .helpers import FULL, fails, roundtrip, splits


# ---- toy data sets, learnable from word identity ------------------------------------------
def toy_rows(n, seed):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words, tags = [], []
        for _ in range(rng.randint(4, 8)):
            kind = rng.random()
            if kind < 0.2:
                words.append(rng.choice(POSITIVE))
                tags.append("B-POS")
            elif kind < 0.35:
                words.append(rng.choice(NEGATIVE))
                tags.append("B-NEG")
            else:
                words.append(rng.choice(FILLER))
                tags.append("O")
        rows.append({"tokens": words, "tags": tags})
    return rows


def test_tag_from_conll_files_predicts_entity_spans(tiny_bert_std, tmp_path):
    d = tmp_path / "conll"
    d.mkdir()
    for name, n, seed in (("train", 160, 1), ("validation", 48, 2), ("test", 48, 3)):
        text = "-DOCSTART- -X- O\n\n" + "\n\n".join(
            "\n".join(f"{w} NN {t}" for w, t in zip(r["tokens"], r["tags"], strict=True)) for r in toy_rows(n, seed))
        (d / f"{name}.conll").write_text(text + "\n")
    run = enctune.train(data=str(d), out=str(tmp_path / "run"), model=str(tiny_bert_std), **FULL)
    m = run.metrics
    assert m["task"] == "tag" and m["strategy"] == "full"
    assert m["test"]["f1"] >= 0.8 and set(m["test"]["per_type"]) == {"NEG", "POS"}
    preds = roundtrip(run, tmp_path / "run", ["The film was good , great and bad!"])
    ents = {(e["type"], e["text"]) for e in preds[0]["entities"]}
    assert ("POS", "good") in ents and ("NEG", "bad") in ents
    text = "The film was good , great and bad!"
    for e in preds[0]["entities"]:
        assert text[e["start"]:e["end"]] == e["text"]


def test_tag_jsonl_and_evaluate_cli(tiny_bert_std, tmp_path, capsys):
    data = splits(tmp_path, toy_rows)
    enctune.train(data=str(data), out=str(tmp_path / "run"), model=str(tiny_bert_std), **FULL)
    assert main(["evaluate", str(tmp_path / "run"), "--data", str(data / "test.jsonl"), "--json", "-q"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["task"] == "tag" and m["n"] == 48 and m["f1"] >= 0.8


# ---- metrics against hand-computed values ----------------------------------------------------
def test_conll_chunks_and_entity_scores():
    assert entities(["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-ORG"]) == [
        ("PER", 0, 2), ("LOC", 3, 4), ("LOC", 4, 5), ("ORG", 5, 6)]
    assert entities(["I-PER", "I-PER", "O", "I-LOC"]) == [("PER", 0, 2), ("LOC", 3, 4)]  # IOB1: I after O begins
    assert entities(["S-PER", "B-LOC", "E-LOC"]) == [("PER", 0, 1), ("LOC", 1, 3)]
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "B-LOC"]]
    s = entity_scores(gold, pred)
    # predicted 3 (PER, ORG, LOC@1), gold 3 (PER, LOC@0, ORG), correct 2
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3) and s["word_accuracy"] == pytest.approx(4 / 6)
    assert s["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_ragged_tokens_and_tags_name_the_row(tiny_bert_std, tmp_path):
    rows = toy_rows(10, 0)
    rows[3]["tags"] = rows[3]["tags"][:-1]
    fails(tiny_bert_std, tmp_path, rows, r"train.jsonl, line 4: \d+ word\(s\) in 'tokens' but \d+ tag\(s\)")


def test_conll_line_with_one_column_is_named(tiny_bert_std, tmp_path):
    d = tmp_path / "c"
    d.mkdir()
    (d / "train.conll").write_text("good B-POS\nfilm O\n\nlonely\n")
    with pytest.raises(UserError, match=r"train.conll, line 4: one column"):
        enctune.train(data=str(d / "train.conll"), out=str(tmp_path / "run"), model=str(tiny_bert_std))


def test_probe_refuses_token_tasks(tiny_bert_std, tmp_path):
    data = splits(tmp_path, toy_rows, n=(20, 8, 8))
    with pytest.raises(UserError, match="needs a vector per token"):
        enctune.train(data=str(data), out=str(tmp_path / "run"), model=str(tiny_bert_std), strategy="probe")
