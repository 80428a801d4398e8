"""Retrieval metrics from graded relevance, computed as trec_eval (through BEIR and MTEB) computes them.

For one query with ranked documents d_1, d_2, ... and judgements rel(d) >= 0 (unjudged documents count 0,
and a document is *relevant* when rel(d) > 0):

    nDCG@k    = DCG@k / IDCG@k,  DCG@k = sum_{i<=k} rel(d_i) / log2(i + 1)   (linear gain, as trec_eval's ndcg_cut;
                IDCG@k is the same sum over the judgements sorted from the highest)
    MRR@k     = 1 / i for the first relevant d_i with i <= k, else 0
    Recall@k  = |relevant among d_1..d_k| / |relevant|
    MAP@k     = (sum over relevant d_i with i <= k of Precision@i) / |relevant|

Each is averaged over the queries that have judgements (trec_eval scores a query with no relevant document 0).
As BEIR does by default, a document whose id is the query's own id is dropped from that query's ranking
(datasets such as Quora hold the queries in the corpus).
"""

from __future__ import annotations

import math

import numpy as np

CUTOFFS = (1, 10, 100)


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best columns of each row of ``scores`` (Q, D), best first: (indices (Q, k'), scores (Q, k')) with
    k' = min(k, D). Ties keep the columns' order."""
    k = min(k, scores.shape[1])
    if k < scores.shape[1]:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        sub = np.take_along_axis(scores, part, axis=1)
        # stable on (score desc, column asc): argpartition's order within the top k is arbitrary
        order = np.lexsort((part, -sub), axis=1)
        idx = np.take_along_axis(part, order, axis=1)
    else:
        idx = np.argsort(-scores, axis=1, kind="stable")
    return idx, np.take_along_axis(scores, idx, axis=1)


def query_metrics(ranked: list[str], judged: dict[str, int], ks: tuple[int, ...] = CUTOFFS) -> dict[str, float]:
    """The metrics of one query: ``ranked`` document ids best first, ``judged`` id -> graded relevance."""
    relevant = {d for d, r in judged.items() if r > 0}
    gains = [max(judged.get(d, 0), 0) for d in ranked]
    ideal = sorted((r for r in judged.values() if r > 0), reverse=True)
    out: dict[str, float] = {}
    for k in sorted({10, *ks}):
        dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains[:k]))
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal[:k]))
        hits = [i for i, d in enumerate(ranked[:k]) if d in relevant]
        out[f"ndcg@{k}"] = dcg / idcg if idcg > 0 else 0.0
        out[f"mrr@{k}"] = 1.0 / (hits[0] + 1) if hits else 0.0
        out[f"recall@{k}"] = len(hits) / len(relevant) if relevant else 0.0
        out[f"map@{k}"] = (sum((n + 1) / (i + 1) for n, i in enumerate(hits)) / len(relevant)) if relevant else 0.0
    return out


def retrieval_metrics(ranked: dict[str, list[str]], qrels: dict[str, dict[str, int]],
                      ks: tuple[int, ...] = CUTOFFS) -> dict:
    """Mean metrics over the queries of ``qrels`` (query id -> {document id: relevance}); ``ranked`` maps a
    query id to its document ids, best first (a query missing from it ranked nothing). Returns nDCG, MRR,
    Recall and MAP at every cut-off of ``ks`` and 10 (``ndcg@10`` is the primary figure), and ``queries``."""
    per = []
    for q, judged in qrels.items():
        docs = [d for d in ranked.get(q, []) if d != q]
        per.append(query_metrics(docs, judged, ks))
    if not per:
        return {"queries": 0}
    out = {k: float(np.mean([p[k] for p in per])) for k in per[0]}
    out["queries"] = len(per)
    return out


def normalised(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit length (float32), so that a dot product is a cosine."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def rank_by_cosine(queries: np.ndarray, documents: np.ndarray, k: int = 100,
                   block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The k documents (rows of ``documents`` (D, H)) nearest each query (rows of ``queries`` (Q, H)) by cosine:
    (indices (Q, k), cosines (Q, k)), best first. Queries go ``block`` at a time, so the score matrix in memory is
    (block, D) whatever Q."""
    docs = normalised(documents)
    idx, scores = [], []
    for i in range(0, len(queries), block):
        a, b = top_k(normalised(queries[i:i + block]) @ docs.T, k)
        idx.append(a)
        scores.append(b)
    if not idx:
        return np.zeros((0, min(k, len(docs))), dtype=np.int64), np.zeros((0, min(k, len(docs))), dtype=np.float32)
    return np.concatenate(idx), np.concatenate(scores)


def corpus_metrics(embed, corpus, split: str = "test", k: int = 100, reorder=None) -> dict:
    """The metrics of ``split``'s judged queries, each ranking the whole corpus. ``embed(texts) -> (N, H)`` gives
    the vectors (the same function for queries and documents: one encoder); ``reorder(queries, rankings)``, when
    given, returns each query's ranking (document indices) reordered (a reranker)."""
    judged = corpus.qrels[split]
    qids = list(judged)
    doc_vecs = embed(corpus.texts)
    texts = [corpus.queries[q] for q in qids]
    idx, _ = rank_by_cosine(embed(texts), doc_vecs, k)
    rows = [list(r) for r in idx] if reorder is None else reorder(texts, [list(r) for r in idx])
    ranked = {q: [corpus.ids[j] for j in row] for q, row in zip(qids, rows, strict=True)}
    return {**retrieval_metrics(ranked, judged), "documents": len(corpus)}
