"""A BEIR-style folder read and checked: documents, queries, graded judgements, and errors naming file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enctune.errors import UserError
from enctune.retrieval import is_beir_folder, read_beir, read_documents


def write_beir(folder: Path, docs: dict[str, str], queries: dict[str, str], qrels: dict[str, list[tuple]]) -> Path:
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n"
                                                 for k, v in docs.items()))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in queries.items()))
    for split, rows in qrels.items():
        (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n"
                                                       + "".join("\t".join(map(str, r)) + "\n" for r in rows))
    return folder


def small(tmp_path, **qrels):
    return write_beir(tmp_path / "beir", {"a": "apples are red", "b": "bananas are yellow", "c": "cherries"},
                      {"q1": "red fruit", "q2": "yellow fruit"},
                      qrels or {"train": [("q1", "a", 1), ("q2", "b", 2), ("q2", "c", 0)], "test": [("q1", "a", 1)]})


def test_reads_documents_queries_and_graded_judgements(tmp_path):
    folder = small(tmp_path)
    assert is_beir_folder(folder) and not is_beir_folder(folder / "qrels")
    c = read_beir(folder)
    assert c.ids == ["a", "b", "c"] and c.queries["q2"] == "yellow fruit"
    assert c.qrels["train"] == {"q1": {"a": 1}, "q2": {"b": 2, "c": 0}}
    pairs = c.pairs("train")
    # only relevant judgements become pairs, each at its qrels line
    assert [(r["query"], r["positive"]) for r in pairs.records] == [("red fruit", "apples are red"),
                                                                      ("yellow fruit", "bananas are yellow")]
    assert pairs.lines == [2, 3] and c.pairs("validation") is None


def test_a_title_is_joined_to_the_text(tmp_path):
    folder = small(tmp_path)
    (folder / "corpus.jsonl").write_text(json.dumps({"_id": "a", "title": "Apple", "text": "a fruit"}) + "\n"
                                         + json.dumps({"_id": "b", "text": "b"}) + "\n"
                                         + json.dumps({"_id": "c", "text": "c"}) + "\n")
    assert read_beir(folder).texts[0] == "Apple a fruit"


@pytest.mark.parametrize("rows, match", [
    ([("q1", "zz", 1)], r"qrels/train.tsv, line 2: document 'zz' is not in corpus.jsonl"),
    ([("q9", "a", 1)], r"qrels/train.tsv, line 2: query 'q9' is not in queries.jsonl"),
    ([("q1", "a", "high")], r"line 2, column 'score': 'high' is not a whole number"),
    ([("q1", "a")], r"line 2: 2 field\(s\)"),
    ([("q1", "a", 0)], r"no judgement with a score above 0"),
])
def test_bad_judgements_name_the_file_and_line(tmp_path, rows, match):
    folder = small(tmp_path, train=rows)
    with pytest.raises(UserError, match=match):
        read_beir(folder).pairs("train")


def test_a_repeated_document_id_names_both_lines(tmp_path):
    folder = small(tmp_path)
    with open(folder / "corpus.jsonl", "a") as f:
        f.write(json.dumps({"_id": "a", "text": "again"}) + "\n")
    with pytest.raises(UserError, match=r"corpus.jsonl, line 4: document id 'a' again \(first at line 1\)"):
        read_beir(folder)


def test_documents_from_any_file_with_ids_or_line_numbers(tmp_path):
    f = tmp_path / "docs.csv"
    f.write_text("text,other\nfirst doc,x\nsecond doc,y\n")
    assert read_documents(f) == (["2", "3"], ["first doc", "second doc"])
    g = tmp_path / "docs.jsonl"
    g.write_text(json.dumps({"id": 7, "body": "x"}) + "\n" + json.dumps({"id": 7, "body": "y"}) + "\n")
    with pytest.raises(UserError, match=r"docs.jsonl, line 2, column 'id': id '7' again \(first at line 1\)"):
        read_documents(g)
