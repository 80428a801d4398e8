"""``retrieve``: a query and the document it should find, encoded apart; ranking metrics within a split."""

from __future__ import annotations

import random

import pytest

import enctune
from enctune.errors import UserError
from enctune.tasks.retrieve import parse_dims

from ..conftest import FILLER, NEGATIVE, POSITIVE
from ..retrieval.test_corpus import write_beir
from .helpers import FULL, splits

KEYS = POSITIVE + NEGATIVE
# the tiny GPT-2's last-token vectors reach 0.84 test nDCG@10 in 40 epochs (0.42 in the shared 10)
CAUSAL_SETTINGS = {"epochs": 40}


def document(key: str) -> str:
    """The one document about ``key``: the key word among filler fixed for it."""
    words = [key, *random.Random(key).sample(FILLER, 3)]
    random.Random(key + "order").shuffle(words)
    return " ".join(words)


def toy_rows(n, seed):
    """Sixteen documents, each about one key word; a query holds its document's key word among other filler."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        key = rng.choice(KEYS)
        q = [key, *rng.sample(FILLER, 2)]
        rng.shuffle(q)
        rows.append({"query": " ".join(q), "positive": document(key)})
    return rows


# ---- the loss ------------------------------------------------------------------------------------------
def test_ranking_loss_masks_a_document_two_queries_share():
    import torch

    from enctune.tasks.heads import ranking_loss

    torch.manual_seed(0)
    u, v = torch.randn(4, 8), torch.randn(4, 8)
    v[1] = v[0]  # rows 0 and 1 hold the same document: for row 0, column 1 is not a negative
    shared = ranking_loss(u, v, torch.tensor([0, 0, 1, 2]))
    as_if_distinct = ranking_loss(u, v, torch.tensor([0, 1, 2, 3]))
    assert shared < as_if_distinct
    # by hand for row 0: cross-entropy over columns 0, 2, 3 only
    s = 20 * torch.nn.functional.normalize(u, dim=-1) @ torch.nn.functional.normalize(v, dim=-1).T
    row0 = -torch.log_softmax(s[0, [0, 2, 3]], 0)[0]
    row1 = -torch.log_softmax(s[1, [1, 2, 3]], 0)[0]
    rest = [-torch.log_softmax(s[i], 0)[i] for i in (2, 3)]
    assert shared.item() == pytest.approx(((row0 + row1 + sum(rest)) / 4).item(), rel=1e-5)


def test_matryoshka_widths_are_averaged_with_the_full_one():
    import torch

    from enctune.tasks.heads import ranking_loss

    torch.manual_seed(1)
    u, v, ids = torch.randn(6, 16), torch.randn(6, 16), torch.arange(6)
    both = ranking_loss(u, v, ids, dims=(8, 32))  # 32 is wider than the vectors: ignored
    assert both.item() == pytest.approx(((ranking_loss(u, v, ids) + ranking_loss(u[:, :8], v[:, :8], ids)) / 2).item())


def test_hard_negatives_join_every_query_unless_they_are_its_own_document():
    import torch

    from enctune.tasks.heads import ranking_loss

    torch.manual_seed(2)
    u, v, w = torch.randn(3, 8), torch.randn(3, 8), torch.randn(3, 8)
    ids, neg = torch.tensor([0, 1, 2]), torch.tensor([5, 0, 6])  # row 1's negative is row 0's document
    got = ranking_loss(u, v, ids, w=w, neg_ids=neg)
    n = torch.nn.functional.normalize
    s = 20 * n(u, dim=-1) @ n(torch.cat([v, w]), dim=-1).T  # (3, 6): the positives, then the negatives
    keep = [[0, 1, 2, 3, 5], [0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5]]  # for row 0, negative column 4 is masked
    by_hand = sum(-torch.log_softmax(s[i, keep[i]], 0)[i] for i in range(3)) / 3
    assert got.item() == pytest.approx(by_hand.item(), rel=1e-5)
    # a negative close to the query makes the loss larger than in-batch negatives alone
    assert ranking_loss(u, v, ids, w=u.clone(), neg_ids=neg) > ranking_loss(u, v, ids)


@pytest.mark.parametrize("value, expected", [("256,128,64", [256, 128, 64]), ("64, 128", [128, 64]), ("none", [])])
def test_matryoshka_dims_option(value, expected):
    assert parse_dims(value) == expected


@pytest.mark.parametrize("value", ["a,b", "0,64"])
def test_bad_matryoshka_dims_are_refused(value):
    with pytest.raises(UserError, match="--matryoshka-dims"):
        parse_dims(value)


# ---- end to end on a retrieval folder ----------------------------------------------------------------
def beir_folder(tmp_path):
    """The toy's sixteen documents plus distractors as a corpus; train and test queries from different seeds."""
    docs = {f"k{i}": document(k) for i, k in enumerate(KEYS)}
    docs.update({f"x{i}": " ".join(random.Random(i).sample(FILLER, 4)) for i in range(8)})
    key_id = {k: f"k{i}" for i, k in enumerate(KEYS)}
    queries, qrels = {}, {"train": [], "test": []}
    for split, n, seed in (("train", 160, 1), ("test", 32, 3)):
        for j, row in enumerate(toy_rows(n, seed)):
            qid = f"{split}{j}"
            queries[qid] = row["query"]
            key = next(w for w in row["query"].split() if w in key_id)
            qrels[split].append((qid, key_id[key], 1))
    return write_beir(tmp_path / "beir", docs, queries, qrels)


def test_a_retrieval_folder_trains_and_test_ranks_the_whole_corpus(tiny_bert_std, tmp_path):
    folder = beir_folder(tmp_path)
    run = enctune.train(data=str(folder), out=str(tmp_path / "run"), model=str(tiny_bert_std), **FULL)
    m = run.metrics
    assert m["task"] == "retrieve"
    assert m["test"]["documents"] == 24 and m["test"]["queries"] == 32  # every document, not the test pairs'
    untrained = enctune.evaluate_retrieval(str(tiny_bert_std), folder)
    assert m["test"]["ndcg@10"] >= 0.6 and m["test"]["ndcg@10"] > untrained["ndcg@10"] + 0.1
    # the saved run scores the same through `evaluate` on the folder
    again = enctune.evaluate(tmp_path / "run", folder)
    assert again["ndcg@10"] == pytest.approx(m["test"]["ndcg@10"], abs=1e-6)
    # one text gives its embedding; a query with a document their cosine
    p = enctune.load(tmp_path / "run")
    (e,) = p.predict(["good film"])
    (s,) = p.predict(["good film"], ["good movie"])
    assert len(e["embedding"]) == 32 and -1.0 <= s["score"] <= 1.0


def test_probe_is_refused_for_a_task_without_a_head(tiny_bert_std, tmp_path):
    folder = beir_folder(tmp_path)
    with pytest.raises(UserError, match="has no head"):
        enctune.train(data=str(folder), out=str(tmp_path / "run"), model=str(tiny_bert_std), strategy="probe")


def test_a_folder_without_train_judgements_is_for_evaluate(tiny_bert_std, tmp_path):
    folder = beir_folder(tmp_path)
    (folder / "qrels" / "train.tsv").unlink()
    with pytest.raises(UserError, match="no train.tsv, so nothing to train on"):
        enctune.train(data=str(folder), out=str(tmp_path / "run"), model=str(tiny_bert_std), **FULL)


def test_the_embedding_is_the_pooled_vector_turned_by_its_principal_directions(tiny_bert_std, tmp_path):
    """The head rotates the pooled vector onto the training texts' principal directions: an orthogonal map, so
    every cosine at the full width is the encoder's own, and the first dimension carries the most variance."""
    import numpy as np

    data = splits(tmp_path, toy_rows, n=(96, 32, 32))
    run = enctune.train(data=str(data), out=str(tmp_path / "run"), model=str(tiny_bert_std), **{**FULL, "epochs": 2})
    p = enctune.load(tmp_path / "run")
    texts = [r["query"] for r in toy_rows(40, 9)] + [r["positive"] for r in toy_rows(40, 9)]
    rotated = p.logits(texts)
    pooled = p.embed(texts)
    r = p.model.head.rotation.numpy()
    np.testing.assert_allclose(r @ r.T, np.eye(32), atol=1e-5)
    np.testing.assert_allclose(rotated, pooled @ r, atol=1e-4)
    unit = rotated / np.linalg.norm(rotated, axis=1, keepdims=True)
    var = (unit - unit.mean(0)).var(0)
    assert var[0] > np.median(var)
    assert run.metrics["test"]["ndcg@10"] > 0


# ---- hard negatives: given in the data, or mined ------------------------------------------------------
def with_negatives(n, seed):
    """The toy rows, each with another key's document as its hard negative."""
    rows = toy_rows(n, seed)
    for r in rows:
        key = next(w for w in r["query"].split() if w in KEYS)
        r["negative"] = document(KEYS[(KEYS.index(key) + 1) % len(KEYS)])
    return rows


def test_a_negative_column_trains_a_third_text(tiny_bert_std, tmp_path, monkeypatch):
    from enctune.data import read_table
    from enctune.tasks import TASKS, heads

    widths = []  # the hard negatives (B, H) each training step's loss was given
    plain = heads.ranking_loss

    def spy(u, v, ids, scale=20.0, dims=(), w=None, neg_ids=None):
        widths.append(None if w is None else tuple(w.shape))
        return plain(u, v, ids, scale, dims, w, neg_ids)

    monkeypatch.setattr(heads, "ranking_loss", spy)
    data = splits(tmp_path, with_negatives, n=(96, 32, 32))
    run = enctune.train(data=str(data), out=str(tmp_path / "run"), model=str(tiny_bert_std), **FULL)
    assert run.metrics["test"]["ndcg@10"] >= 0.6
    assert widths and all(w is not None and w[1] == 32 for w in widths)  # every step had its negatives
    # the task read each row's negative and tokenized it beside the pair
    task = TASKS["retrieve"]()
    table = read_table(data / "train.jsonl")
    ex = task.read(table, task.infer_columns(table))
    assert ex.negatives[0] == with_negatives(96, 1)[0]["negative"]


def test_negatives_zero_ignores_the_column_and_one_mines(tiny_bert_std, tmp_path):
    from enctune.data import Examples
    from enctune.encoders import Encoder
    from enctune.tasks.retrieve import RetrieveTask

    data = splits(tmp_path, toy_rows, n=(48, 16, 16))
    enc = Encoder.load(str(tiny_bert_std))
    table_rows = toy_rows(48, 1)

    ex = Examples([r["query"] for r in table_rows], [r["positive"] for r in table_rows],
                  ["text:" + r["positive"] for r in table_rows], negatives=[document(KEYS[0])] * 48)
    for negatives, expect_third in ((0, False), (None, True)):
        task = RetrieveTask(negatives=negatives)
        train = task.prepare(enc, ex)
        task._attach_negatives(enc, train)
        assert (train.tokens.third is not None) == expect_third
        assert train.targets.ndim == (2 if expect_third else 1)
    # mined: each row's negative is another document of the training rows, never its own
    task = RetrieveTask(negatives=1)
    no_column = Examples(ex.texts, ex.pairs, ex.labels)
    train = task.prepare(enc, no_column)
    task._attach_negatives(enc, train)
    assert train.targets.shape == (48, 2)
    assert bool((train.targets[:, 0] != train.targets[:, 1]).all())
    distinct = sorted(set(ex.labels), key=ex.labels.index)
    for i, j in enumerate(train.targets[:, 1].tolist()):
        assert train.tokens.third.input_ids[i] == enc.tokenize([distinct[j][5:]], templated=False).input_ids[0]
    # a run with --negatives 1 trains through the loop with the third text
    run = enctune.train(data=str(data), out=str(tmp_path / "run"), model=str(tiny_bert_std), negatives=1,
                        **{**FULL, "epochs": 2})
    assert run.metrics["task"] == "retrieve"


def test_a_row_without_its_negative_is_named(tiny_bert_std, tmp_path):
    from .helpers import fails

    rows = with_negatives(20, 1)
    rows[6]["negative"] = ""
    fails(tiny_bert_std, tmp_path, rows, r"line 7, column 'negative': no hard negative text", **FULL)


def test_retrieve_takes_one_negative_a_query():
    from enctune.tasks.retrieve import RetrieveTask

    with pytest.raises(UserError, match="--negatives 4"):
        RetrieveTask(negatives=4)


def test_a_token_cap_keeps_the_whole_batch_as_negatives(tiny_bert_no_dropout, tmp_path):
    """Cut into passes by --max-tokens-per-batch, a batch still trains on the loss of all its rows (gradient
    caching): the same model as without the cap, not one trained on smaller batches."""
    import numpy as np

    data = splits(tmp_path, toy_rows, n=(64, 16, 16))
    kw = {**FULL, "epochs": 2, "dropout": 0.0, "batch_size": 16}
    ref = enctune.train(data=str(data), out=str(tmp_path / "ref"), model=str(tiny_bert_no_dropout), **kw)
    capped = enctune.train(data=str(data), out=str(tmp_path / "capped"), model=str(tiny_bert_no_dropout),
                           max_tokens_per_batch=60, **kw)
    texts = [r["query"] for r in toy_rows(10, 5)]
    a, b = ref.predictor.logits(texts), capped.predictor.logits(texts)
    assert np.allclose(a, b, atol=2e-4)
