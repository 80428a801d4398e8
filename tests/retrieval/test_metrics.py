"""Retrieval metrics against values worked out by hand (trec_eval's definitions), and the exact top-k."""

from __future__ import annotations

import math

import numpy as np
import pytest

from enctune.retrieval import rank_by_cosine, retrieval_metrics, top_k
from enctune.retrieval.metrics import query_metrics


def test_one_query_with_graded_judgements_by_hand():
    # d1 (relevance 2) at rank 2, d3 (relevance 1) at rank 3, d2 and d4 not relevant
    m = query_metrics(["d2", "d1", "d3", "d4"], {"d1": 2, "d3": 1, "d2": 0})
    dcg = 2 / math.log2(3) + 1 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert m["ndcg@10"] == pytest.approx(dcg / idcg)  # 0.6697: linear gain, as trec_eval's ndcg_cut
    assert m["ndcg@1"] == 0.0
    assert m["mrr@10"] == 0.5 and m["mrr@1"] == 0.0
    assert m["recall@1"] == 0.0 and m["recall@10"] == 1.0
    assert m["map@10"] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_the_mean_counts_every_judged_query_and_a_missed_one_scores_zero():
    qrels = {"q1": {"d1": 2, "d3": 1}, "q2": {"d9": 1}}
    m = retrieval_metrics({"q1": ["d2", "d1", "d3", "d4"], "q2": ["d1", "d2"]}, qrels)
    one = query_metrics(["d2", "d1", "d3", "d4"], qrels["q1"])
    assert m["queries"] == 2
    assert m["ndcg@10"] == pytest.approx(one["ndcg@10"] / 2)
    assert m["recall@10"] == pytest.approx(0.5)
    assert m["map@10"] == pytest.approx(one["map@10"] / 2)


def test_a_document_with_the_querys_own_id_is_not_ranked():
    # as BEIR does by default: a corpus that holds the queries must not find each query itself
    m = retrieval_metrics({"d1": ["d1", "d2"]}, {"d1": {"d2": 1}})
    assert m["mrr@10"] == 1.0


def test_cutoffs_cut():
    ranked = [f"x{i}" for i in range(10)] + ["rel"]
    m = query_metrics(ranked, {"rel": 1})
    assert m["recall@10"] == 0.0 and m["recall@100"] == 1.0 and m["mrr@100"] == pytest.approx(1 / 11)


def test_top_k_is_the_best_first_and_ties_keep_column_order():
    s = np.array([[0.1, 0.9, 0.5, 0.9, 0.2]])
    idx, scores = top_k(s, 3)
    assert idx.tolist() == [[1, 3, 2]] and scores.tolist() == [[0.9, 0.9, 0.5]]
    assert top_k(s, 10)[0].shape == (1, 5)


def test_rank_by_cosine_matches_brute_force_across_blocks():
    rng = np.random.default_rng(0)
    q, d = rng.normal(size=(7, 8)), rng.normal(size=(50, 8)) * rng.uniform(0.1, 10, size=(50, 1))
    idx, scores = rank_by_cosine(q, d, k=5, block=3)
    cos = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (d / np.linalg.norm(d, axis=1, keepdims=True)).T
    assert idx.tolist() == np.argsort(-cos, axis=1)[:, :5].tolist()
    np.testing.assert_allclose(scores, np.sort(cos, axis=1)[:, ::-1][:, :5], rtol=1e-5)


def test_every_metric_equals_trec_eval_on_random_graded_rankings():
    """pytrec_eval wraps trec_eval itself, which BEIR and MTEB score with."""
    import random

    import pytrec_eval

    rng = random.Random(0)
    docs = [f"d{i}" for i in range(300)]
    qrels, run, ranked = {}, {}, {}
    for q in range(60):
        judged = rng.sample(docs, rng.randint(1, 20))
        qrels[f"q{q}"] = {d: rng.choice([0, 1, 2]) for d in judged}
        qrels[f"q{q}"][judged[0]] = rng.choice([1, 2])  # at least one relevant
        ranked[f"q{q}"] = rng.sample(docs, 150)
        run[f"q{q}"] = {d: float(150 - i) for i, d in enumerate(ranked[f"q{q}"])}
    names = {"ndcg_cut_10": "ndcg@10", "ndcg_cut_100": "ndcg@100", "recall_10": "recall@10",
             "recall_100": "recall@100", "map_cut_10": "map@10", "map_cut_100": "map@100"}
    trec = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "ndcg_cut.100", "recall.10", "recall.100",
                                                  "map_cut.10", "map_cut.100"}).evaluate(run)
    mine = retrieval_metrics(ranked, qrels)
    for theirs, ours in names.items():
        assert mine[ours] == pytest.approx(np.mean([r[theirs] for r in trec.values()]), abs=1e-9), ours
