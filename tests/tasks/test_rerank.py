"""``rerank``: a cross-encoder scoring (query, document) pairs; judged rows, or positives with mined negatives."""

from __future__ import annotations

import random

import numpy as np
import pytest

import enctune
from enctune.errors import UserError
from enctune.retrieval.mining import mine_negatives

from .helpers import FULL, splits
from .test_retrieve import KEYS, document
from .test_retrieve import toy_rows as positive_rows


def toy_rows(n, seed):
    """Judged pairs, three per query: its key word's document (relevant, 1) and two others' (0)."""
    rng = random.Random(seed)
    rows = []
    for r in positive_rows(-(-n // 3), seed):
        key = next(w for w in r["query"].split() if w in KEYS)
        rows.append({"query": r["query"], "document": r["positive"], "label": 1})
        for other in rng.sample([k for k in KEYS if k != key], 2):
            rows.append({"query": r["query"], "document": document(other), "label": 0})
    return rows[:n]


def test_positives_alone_get_mined_negatives_and_rank_them(tiny_bert_std, tmp_path):
    data = splits(tmp_path, positive_rows, n=(96, 32, 32))
    run = enctune.train(data=str(data), out=str(tmp_path / "run"), model=str(tiny_bert_std), task="rerank",
                        negatives=3, **{**FULL, "epochs": 5})
    m = run.metrics["test"]
    # 32 positives, each query with up to 3 mined negatives among the split's documents; ranking one positive
    # among four candidates at random scores an nDCG@10 of about 0.56
    assert m["candidates"] > 32 + 32 and m["queries"] <= 32
    assert m["ndcg@10"] >= 0.7
    pos, neg = run.predictor.predict(["good film the", "good film the"], [document("good"), document("bad")])
    assert pos["score"] > neg["score"]


def test_mining_skips_positives_and_candidates_too_close_to_them():
    q = np.array([[1.0, 0.0]])
    d = np.array([[1.0, 0.0], [0.99, 0.1], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]])
    # d0 is the positive; d1 scores within 5% of it (likely an unlabelled positive): skipped
    assert mine_negatives(q, d, [{0}], n=2) == [[2, 3]]
    assert mine_negatives(q, d, [{0}], n=2, margin=1.0) == [[1, 2]]


def test_positives_alone_without_negatives_are_refused(tiny_bert_std, tmp_path):
    data = splits(tmp_path, positive_rows, n=(40, 16, 16))
    with pytest.raises(UserError, match="nothing to tell them from"):
        enctune.train(data=str(data), out=str(tmp_path / "run"), model=str(tiny_bert_std), task="rerank",
                      negatives=0, **FULL)
