"""``enctune index`` and ``enctune search``: a corpus embedded once, queried by the model that built it; an index
folder written whole and refused when damaged; search on a Matryoshka prefix."""

from __future__ import annotations

import json

import numpy as np
import pytest

import enctune
from enctune.cli import main
from enctune.errors import UserError
from enctune.retrieval import read_index

from .conftest import FILLER, NEGATIVE, POSITIVE, write_jsonl

DOCS = [{"id": f"d{i}", "text": f"{w} {FILLER[i % len(FILLER)]} {FILLER[(i + 3) % len(FILLER)]}"}
        for i, w in enumerate(POSITIVE + NEGATIVE)]


@pytest.fixture(scope="module")
def built(tiny_bert_std, tmp_path_factory):
    d = tmp_path_factory.mktemp("search")
    write_jsonl(d / "docs.jsonl", DOCS)
    assert main(["index", str(tiny_bert_std), "--corpus", str(d / "docs.jsonl"), "--out", str(d / "idx"), "-q"]) == 0
    return d


def test_the_index_holds_unit_vectors_equal_to_embed(built, tiny_bert_std):
    idx = read_index(built / "idx")
    assert idx.ids == [r["id"] for r in DOCS] and idx.meta["model"] == str(tiny_bert_std.resolve())
    vectors = enctune.embed(str(tiny_bert_std), [r["text"] for r in DOCS])
    want = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    np.testing.assert_allclose(idx.vectors, want, atol=1e-6)


def test_search_returns_the_nearest_documents_best_first(built, capsys, tiny_bert_std):
    capsys.readouterr()
    assert main(["search", str(built / "idx"), DOCS[3]["text"], DOCS[5]["text"], "-k", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    first, second = (r["hits"] for r in out["results"])
    assert first[0]["id"] == "d3" and first[0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert second[0]["id"] == "d5" and len(first) == 3
    assert [h["score"] for h in first] == sorted((h["score"] for h in first), reverse=True)
    assert out["search_ms"] >= 0 and out["embed_ms"] >= 0


def test_search_on_a_prefix_renormalises(built):
    s = enctune.Searcher(built / "idx")
    hits, _ = s.search([DOCS[0]["text"]], k=2, dims=8)
    assert hits[0][0]["id"] == "d0" and hits[0][0]["score"] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(UserError, match="--dims 99"):
        s.search(["x"], dims=99)


def test_an_index_is_replaced_only_with_overwrite_and_a_foreign_folder_never(built, tiny_bert_std, capsys):
    args = ["index", str(tiny_bert_std), "--corpus", str(built / "docs.jsonl"), "-q"]
    assert main([*args, "--out", str(built / "idx")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--out", str(built / "idx"), "--overwrite"]) == 0
    foreign = built / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    assert main([*args, "--out", str(foreign), "--overwrite"]) == 2
    assert (foreign / "notes.txt").read_text() == "keep"


def test_searching_what_is_not_an_index_is_a_message(built, capsys):
    assert main(["search", str(built), "anything"]) == 2
    assert "not an enctune index" in capsys.readouterr().err


def test_an_approximate_index_is_built_on_request_and_says_its_recall(built, tiny_bert_std, capsys):
    out = built / "idx-hnsw"
    assert main(["index", str(tiny_bert_std), "--corpus", str(built / "docs.jsonl"), "--out", str(out),
                 "--ann", "hnsw", "--json"]) == 0
    captured = capsys.readouterr()
    info = json.loads(captured.out)
    assert info["ann"]["kind"] == "hnsw" and 0.0 <= info["ann"]["recall@10"] <= 1.0
    assert main(["search", str(out), DOCS[3]["text"], "-k", "3", "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)["results"]
    assert result["hits"][0]["id"] == "d3"  # the document itself, found through the graph
    assert main(["index", str(tiny_bert_std), "--corpus", str(built / "docs.jsonl"), "--out", str(built / "x"),
                 "--ann", "maybe", "-q"]) == 2
