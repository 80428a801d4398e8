"""The approximate index: an HNSW graph beside the exact vectors, its recall measured, its file checked."""

from __future__ import annotations

import json

import numpy as np
import pytest

from enctune.errors import UserError
from enctune.retrieval import ann, read_index, write_index
from enctune.retrieval.metrics import normalised, top_k


def corpus(n=600, dim=32, seed=0):
    """Unit vectors in clusters (as sentence embeddings are), ids and texts."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, dim))
    x = normalised((centres[rng.integers(20, size=n)] + 0.3 * rng.normal(size=(n, dim))).astype(np.float32))
    return [f"d{i}" for i in range(n)], [f"text {i}" for i in range(n)], x


def test_auto_builds_a_graph_only_past_the_threshold():
    assert not ann.wanted("auto", ann.ANN_MIN_DOCS) and ann.wanted("auto", ann.ANN_MIN_DOCS + 1)
    assert ann.wanted("hnsw", 10) and not ann.wanted("exact", 10**9)
    with pytest.raises(UserError, match="--ann fast"):
        ann.wanted("fast", 10)


def test_a_graph_index_answers_like_exact_search_and_records_its_recall(tmp_path):
    ids, texts, x = corpus()
    graph = write_index(tmp_path / "idx", ids, texts, x, {"model": "m"}, approximate="hnsw")
    meta = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert meta["ann"] == graph and graph["kind"] == "hnsw" and "ann.faiss" in meta["files"]
    assert graph["recall@10"] >= 0.95 and graph["recall_queries"] == ann.RECALL_QUERIES
    idx = read_index(tmp_path / "idx")
    assert idx.graph is not None
    q = normalised(x[:20] + 0.05)
    exact, _ = top_k(q @ x.T, 10)
    hits = idx.search(q, 10)
    overlap = np.mean([len({h["id"] for h in row} & {ids[j] for j in e}) / 10 for row, e in zip(hits, exact, strict=True)])
    assert overlap >= 0.9
    assert all(row[0]["score"] >= row[-1]["score"] for row in hits)  # best first, cosines
    # a Matryoshka prefix is searched exactly: the graph holds full-width vectors
    (prefix,) = idx.search(q[:1], 5, dims=8)
    want, _ = top_k(normalised(q[:1, :8]) @ normalised(x[:, :8]).T, 5)
    assert [h["id"] for h in prefix] == [ids[j] for j in want[0]]


def test_the_recall_is_measured_not_assumed():
    """A graph that finds little (one neighbour a node, the narrowest search) reports a low recall."""
    _, _, x = corpus(n=2000, dim=64, seed=1)
    import faiss
    weak = faiss.IndexHNSWFlat(64, 2, faiss.METRIC_INNER_PRODUCT)
    weak.hnsw.efConstruction = 2
    weak.add(x)
    weak.hnsw.efSearch = 1
    assert ann.recall_at_10(weak, x) < ann.recall_at_10(ann.build(x), x)


def test_exact_indexes_hold_no_graph(tmp_path):
    ids, texts, x = corpus(50)
    assert write_index(tmp_path / "idx", ids, texts, x, {}, approximate="auto") is None
    assert read_index(tmp_path / "idx").graph is None and not (tmp_path / "idx" / "ann.faiss").exists()


def test_a_changed_graph_file_is_refused(tmp_path):
    ids, texts, x = corpus(100)
    write_index(tmp_path / "idx", ids, texts, x, {}, approximate="hnsw")
    f = tmp_path / "idx" / "ann.faiss"
    f.write_bytes(f.read_bytes()[:-10])
    with pytest.raises(UserError, match="changed since the index was written"):
        read_index(tmp_path / "idx")
    f.unlink()
    with pytest.raises(UserError, match="missing"):
        read_index(tmp_path / "idx")
