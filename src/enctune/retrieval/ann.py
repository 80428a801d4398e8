"""An approximate index for corpora too large to scan: HNSW graphs from FAISS, with their recall measured.

Exact search costs N x H multiply-adds a query: 1M documents of 384 dimensions are 0.4 GFLOP, tens of
milliseconds on a laptop core, and the vectors alone fill 1.5 GB. Past ``ANN_MIN_DOCS`` documents (``--ann
auto``) the index also holds a hierarchical navigable small-world graph (Malkov and Yashunin, 2018; FAISS's
``IndexHNSWFlat`` over inner products of unit vectors, so its scores are cosines): a query walks the graph
and visits a few thousand vectors instead of all of them. What it gives up is measured when it is built and
recorded in index.json: ``recall@10``, the share of the exact top 10 that the graph returns, over
``RECALL_QUERIES`` documents of the corpus used as queries (each one's own row left out of both lists). Queries
are not documents, and the graph finds documents' neighbours more easily than queries': measured, this figure
reads high (0.993 where real queries got 0.948 at a narrower search), so the search width is set by real
queries (``EF_SEARCH``) and the recorded figure is an upper estimate, named as such.

The graph is stored as FAISS writes it (``ann.faiss``), with its SHA-256 in index.json, checked before FAISS
reads it: a file changed or cut since is refused rather than parsed. A Matryoshka prefix (``--dims``) is
searched exactly: the graph was built on the full width.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..digest import file_sha256
from ..errors import UserError
from .metrics import top_k

ANN_MIN_DOCS = 250_000  # "auto" builds a graph above this many documents; below, the exact product is fast enough
ANN_FILE = "ann.faiss"
# neighbours per node; candidate lists while building and searching. efSearch 256, not 128: on 300,000 vectors grown
# from dbpedia_5k's, real queries found 0.996 of the exact top 10 at 256 against 0.948 at 128 (0.5 against 0.3 ms a
# query), while the corpus rows as queries said 0.995 and 0.993 (bench/ann.py, BENCHMARKS.md)
M, EF_CONSTRUCTION, EF_SEARCH = 32, 100, 256
RECALL_QUERIES = 256
KINDS = ("auto", "hnsw", "exact")


def _faiss():
    try:
        import faiss  # lazy: only an approximate index needs it
    except ImportError:
        raise UserError("an approximate index needs FAISS: pip install 'enctune[search]' (faiss-cpu), or build an "
                        "exact one with --ann exact.") from None
    return faiss


def wanted(kind: str, count: int) -> bool:
    """Whether ``--ann kind`` builds a graph for ``count`` documents."""
    if kind not in KINDS:
        raise UserError(f"--ann {kind}: expected {', '.join(KINDS)}.")
    return kind == "hnsw" or (kind == "auto" and count > ANN_MIN_DOCS)


def build(vectors: np.ndarray):
    """An HNSW graph over unit ``vectors`` (N, H), searched by inner product (cosine)."""
    faiss = _faiss()
    graph = faiss.IndexHNSWFlat(vectors.shape[1], M, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = EF_CONSTRUCTION
    graph.add(np.ascontiguousarray(vectors, dtype=np.float32))
    graph.hnsw.efSearch = EF_SEARCH
    return graph


def search(graph, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, scores), each (Q, k), best first; a missing neighbour (a graph smaller than k) is -1."""
    scores, idx = graph.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return idx, scores


def recall_at_10(graph, vectors: np.ndarray, seed: int = 0) -> float:
    """Share of the exact top 10 the graph returns, for up to RECALL_QUERIES corpus rows as queries."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(vectors), min(RECALL_QUERIES, len(vectors)), replace=False)
    q = vectors[rows]
    exact, _ = top_k(q @ vectors.T, 11)
    approx, _ = search(graph, q, 11)
    hits = []
    for r, e, a in zip(rows, exact, approx, strict=True):
        want = [j for j in e.tolist() if j != r][:10]
        got = {j for j in a.tolist() if j != r}
        hits.append(len(got.intersection(want)) / len(want))
    return float(np.mean(hits))


def save(graph, path: Path) -> str:
    """Write the graph; returns its SHA-256 (index.json keeps it)."""
    _faiss().write_index(graph, str(path))
    return file_sha256(path)


def load(path: Path, digest: str):
    """The graph at ``path`` once its SHA-256 matches ``digest``; a UserError otherwise."""
    if not path.is_file():
        raise UserError(f"{path}: missing; index.json says this index has an approximate graph. Build it again.")
    if file_sha256(path) != digest:
        raise UserError(f"{path}: changed since the index was written (its SHA-256 differs from index.json's); "
                        "build the index again.")
    graph = _faiss().read_index(str(path))
    graph.hnsw.efSearch = EF_SEARCH
    return graph
