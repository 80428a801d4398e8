"""The ``fewshot`` strategy on tiny random encoders: balanced pairs, pair tuning, a run that reloads."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

import enctune
from enctune.encoders import Encoder
from enctune.strategies.fewshot import MAX_PAIRS, MIN_PAIRS, pair_count, sample_pairs

from ..conftest import make_rows, write_jsonl

# A tiny random encoder moves visibly only at a rate far above the default encoder's 2e-5. tiny_bert_std
# (small initial weights) keeps each word's identity in its mean-pooled vectors; tiny_bert's large weights
# wash it out, and 25 steps of pair tuning cannot bring it back.
FAST = {"strategy": "fewshot", "lr": 1e-2, "precision": "fp32", "fewshot_pairs": 400}


def _counts(labels, a, b, t):
    y = np.asarray(labels)
    pos = Counter(y[a[t == 1]].tolist())
    neg = Counter(tuple(sorted(p)) for p in zip(y[a[t == 0]].tolist(), y[b[t == 0]].tolist(), strict=True))
    return pos, neg


@pytest.mark.parametrize("n_classes,sizes,n_pairs", [(2, [8, 8], 320), (2, [3, 40], 201),
                                                     (5, [2, 4, 8, 16, 64], 400), (5, [5] * 5, 203)])
def test_pairs_are_balanced(n_classes, sizes, n_pairs):
    labels = np.repeat(np.arange(n_classes), sizes)
    a, b, t = sample_pairs(labels, n_pairs, seed=3)
    assert len(a) == len(b) == len(t) == n_pairs
    assert int(t.sum()) == n_pairs // 2  # half positive, half negative
    assert not np.any(a == b)  # never a text with itself
    assert np.all((labels[a] == labels[b]) == (t == 1))  # targets say whether the labels agree
    pos, neg = _counts(labels, a, b, t)
    # every class has as many positive pairs as any other (within one), and every pair of classes as many
    # negative pairs
    assert set(pos) == set(range(n_classes)) and max(pos.values()) - min(pos.values()) <= 1
    duos = {(c, d) for c in range(n_classes) for d in range(c + 1, n_classes)}
    assert set(neg) == duos and max(neg.values()) - min(neg.values()) <= 1
    # within a class, no pair repeats before all of its pairs are used
    for c, n in enumerate(sizes):
        pairs = Counter(tuple(sorted(p)) for p in zip(a[(t == 1) & (labels[a] == c)].tolist(),
                                                       b[(t == 1) & (labels[a] == c)].tolist(), strict=True))
        assert max(pairs.values()) - min(pairs.values()) <= 1
        assert len(pairs) == min(pos[c], n * (n - 1) // 2)
    # fixed by the seed
    again = sample_pairs(labels, n_pairs, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip((a, b, t), again, strict=True))
    assert not np.array_equal(a, sample_pairs(labels, n_pairs, seed=4)[0])


def test_pair_count_draws_every_distinct_pair_once():
    # 48 examples over 6 classes: 960 distinct negative pairs (48^2 * 5/6 / 2), so 1,920 draws (half negative)
    assert pair_count(48, 6) == 1920
    labels = np.repeat(np.arange(6), 8)
    a, b, t = sample_pairs(labels, pair_count(48, 6), seed=0)
    negatives = {tuple(sorted(p)) for p in zip(a[t == 0].tolist(), b[t == 0].tolist(), strict=True)}
    positives = {tuple(sorted(p)) for p in zip(a[t == 1].tolist(), b[t == 1].tolist(), strict=True)}
    assert len(negatives) == 960 and len(positives) == 6 * 28  # every distinct pair of both kinds
    # more classes, more pairs for the same examples; floors and the cap; a given count wins
    assert pair_count(48, 2) < pair_count(48, 6) < pair_count(48, 28)
    assert pair_count(4, 2) == MIN_PAIRS and pair_count(16, 2) == 20 * 16 and pair_count(10_000, 3) == MAX_PAIRS
    assert pair_count(16, 2, 50) == 50


def test_batch_pair_loss_scores_every_pair_of_the_batch():
    import torch

    from enctune.model import batch_pair_loss

    e0, e1 = [1.0, 0.0], [0.0, 1.0]
    # pairs (0, 1) same label at cos 1, (0, 2) and (1, 2) different at cos 0: nothing to learn
    assert batch_pair_loss(torch.tensor([e0, e0, e1]), torch.tensor([0, 0, 1])).item() == 0.0
    # one positive at cos 0 (squared distance 1) and no negative: 1
    assert batch_pair_loss(torch.tensor([e0, e1]), torch.tensor([3, 3])).item() == pytest.approx(1.0)
    # the positive (0, 1) is right, both negatives at cos 1: the negatives' mean (1) weighs half
    assert batch_pair_loss(torch.tensor([e0, e0, e0]), torch.tensor([0, 0, 1])).item() == pytest.approx(0.5)
    # one text has no pair: 0, and still a tensor the step can back-propagate
    alone = torch.tensor([e0], requires_grad=True)
    loss = batch_pair_loss(alone, torch.tensor([0]))
    loss.backward()
    assert loss.item() == 0.0 and alone.grad is not None
    # scale does not matter: cosines
    assert batch_pair_loss(torch.tensor([[3.0, 0.0], [0.0, 0.5]]), torch.tensor([0, 1])).item() == 0.0


def test_pass_batches_lay_whole_passes_end_to_end():
    from enctune.training.batching import PassBatches

    sampler = PassBatches(10, 3, 4, seed=1)
    rows = [i for batch in sampler for i in batch]
    assert len(sampler) == 8 and len(rows) == 30
    for p in range(3):  # every pass holds every row once
        assert sorted(rows[10 * p:10 * (p + 1)]) == list(range(10))
    assert rows == [i for batch in PassBatches(10, 3, 4, seed=1) for i in batch]
    sampler.set_epoch(1)
    assert rows != [i for batch in sampler for i in batch]


def test_a_class_of_one_gets_negatives_only():
    labels = np.array([0, 1, 1, 1, 2, 2])
    a, b, t = sample_pairs(labels, 100, seed=0)
    pos, neg = _counts(labels, a, b, t)
    assert set(pos) == {1, 2} and pos[1] == pos[2] == 25
    assert set(neg) == {(0, 1), (0, 2), (1, 2)}


def _separation(encoder: Encoder, rows: list[dict]) -> float:
    """Mean cosine of same-label pairs minus mean cosine of different-label pairs."""
    x = encoder.encode(encoder.tokenize([r["text"] for r in rows]))[(encoder.layer, encoder.pooling)]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.array([r["label"] for r in rows])
    cos, same = x @ x.T, y[:, None] == y[None, :]
    off = ~np.eye(len(y), dtype=bool)
    return float(cos[same & off].mean() - cos[~same].mean())


def test_fewshot_trains_reloads_and_pulls_classes_together(tiny_bert_std, tmp_path):
    d = tmp_path / "data"
    write_jsonl(d / "train.jsonl", make_rows(16, seed=1))  # 8 per class
    write_jsonl(d / "validation.jsonl", make_rows(40, seed=2))
    write_jsonl(d / "test.jsonl", make_rows(40, seed=3))
    out = tmp_path / "run"
    run = enctune.train(data=str(d), out=str(out), model=str(tiny_bert_std), **FAST)
    metrics = run.metrics
    assert metrics["strategy"] == "fewshot"
    costs = metrics["costs"]
    # 400 pairs' worth of texts (800) in passes over the 16 examples, 32 a batch: 25 steps of 496 pairs each
    assert costs["pair_passes"] == 50 and costs["pair_steps"] == 25 and costs["pairs"] == 25 * 496
    assert costs["trainable_params"] == costs["pair_trainable_params"] + costs["head_trainable_params"]
    assert costs["head_trainable_params"] == 32 * 2 + 2
    assert costs["pair_loss_curve"] and costs["pair_seconds"] > 0
    assert metrics["test"]["accuracy"] >= 0.8
    meta = json.loads((out / "model" / "enctune.json").read_text())
    assert meta["strategy"] == "fewshot"
    assert (out / "model" / "encoder" / "model.safetensors").is_file()

    texts = [r["text"] for r in make_rows(10, seed=9)]
    loaded = enctune.load(out)
    np.testing.assert_array_equal(run.predictor.predict_proba(texts), loaded.predict_proba(texts))

    # the tuned encoder puts same-label texts closer together than the pre-trained one did
    rows = make_rows(40, seed=5)
    before, after = _separation(Encoder.load(str(tiny_bert_std)), rows), _separation(loaded.encoder, rows)
    assert after > before + 0.05, (before, after)


def test_the_head_is_solved_on_unit_vectors_at_one_strength_when_validation_is_too_small(tiny_bert_std, tmp_path):
    from enctune.strategies.probe import L2_PATH, UNRANKED_L2

    data = write_jsonl(tmp_path / "train.jsonl", make_rows(24, seed=1))  # 10% carved: 2 rows, too few to rank
    run = enctune.train(data=str(data), out=str(tmp_path / "r"), model=str(tiny_bert_std), **FAST)
    hist = run.metrics["history"]
    assert [h["l2"] for h in hist] == [UNRANKED_L2] and hist[0]["iterations"] >= 1
    meta = json.loads((tmp_path / "r" / "model" / "enctune.json").read_text())
    assert meta["task_options"]["head"] == "unit"
    assert json.loads((tmp_path / "r" / "config.json").read_text())["head_solver"] == "lbfgs"
    texts = [r["text"] for r in make_rows(6, seed=9)]
    np.testing.assert_allclose(run.predictor.predict_proba(texts), enctune.load(tmp_path / "r").predict_proba(texts),
                               atol=1e-6)
    # a validation split big enough to rank with walks the path of strengths instead
    d = tmp_path / "ranked"
    write_jsonl(d / "train.jsonl", make_rows(24, seed=1))
    write_jsonl(d / "validation.jsonl", make_rows(60, seed=2))
    walked = enctune.train(data=str(d), out=str(tmp_path / "w"), model=str(tiny_bert_std), **FAST)
    assert [h["l2"] for h in walked.metrics["history"]] == list(L2_PATH[:len(walked.metrics["history"])])
    assert len(walked.metrics["history"]) >= 3
    # --head-l2 solves the strength it names, and no other, even where validation could rank
    given = enctune.train(data=str(d), out=str(tmp_path / "g"), model=str(tiny_bert_std), head_l2=0.05, **FAST)
    assert [h["l2"] for h in given.metrics["history"]] == [0.05]
    # and the loop-trained head is still there when asked for
    sgd = enctune.train(data=str(data), out=str(tmp_path / "s"), model=str(tiny_bert_std), head_solver="sgd", **FAST)
    assert all("l2" not in h for h in sgd.metrics["history"]) and len(sgd.metrics["history"]) > 1


def test_pairs_drawn_apart_pull_classes_together(tiny_bert_std, tmp_path):
    d = tmp_path / "data"
    write_jsonl(d / "train.jsonl", make_rows(16, seed=1))
    write_jsonl(d / "validation.jsonl", make_rows(40, seed=2))
    run = enctune.train(data=str(d), out=str(tmp_path / "run"), model=str(tiny_bert_std), fewshot_loss="pairs",
                        **FAST)
    costs = run.metrics["costs"]
    assert costs["pairs"] == 400 and costs["positive_pairs"] == 200 and costs["pair_steps"] == 25
    rows = make_rows(40, seed=5)
    before = _separation(Encoder.load(str(tiny_bert_std)), rows)
    assert _separation(enctune.load(tmp_path / "run").encoder, rows) > before + 0.05


def test_same_seed_same_run(tiny_bert_std, tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", make_rows(24, seed=1))
    kw = {**FAST, "fewshot_pairs": 64}
    a = enctune.train(data=str(data), out=str(tmp_path / "a"), model=str(tiny_bert_std), **kw)
    b = enctune.train(data=str(data), out=str(tmp_path / "b"), model=str(tiny_bert_std), **kw)
    assert a.metrics["costs"]["pair_loss_curve"] == b.metrics["costs"]["pair_loss_curve"]
    assert a.metrics["validation"] == b.metrics["validation"]


def test_fewshot_with_label_descriptions_and_five_classes(tiny_bert_std, tmp_path):
    labels = ("alpha", "beta", "gamma", "delta", "eps")
    rows = make_rows(25, seed=1, labels=labels)
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    run = enctune.train(data=str(data), out=str(tmp_path / "r"), model=str(tiny_bert_std),
                        labels="alpha: good;beta: bad", **FAST)
    assert run.metrics["data"]["labels"] == sorted(labels)
    assert json.loads((tmp_path / "r" / "model" / "enctune.json").read_text())["task_options"]["head"] == "cosine"
    probs = enctune.load(tmp_path / "r").predict_proba(["good film"])
    assert probs.shape == (1, 5)


def test_fewshot_is_for_classification_only(tiny_bert_std, tmp_path):
    rows = [{"text": r["text"], "label": float(i % 5)} for i, r in enumerate(make_rows(30))]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    with pytest.raises(enctune.UserError, match="only for tasks with one class per example"):
        enctune.train(data=str(data), out=str(tmp_path / "r"), model=str(tiny_bert_std), task="regress", **FAST)


def test_fewshot_refuses_pairs_encoded_apart(tiny_bert_std, tmp_path):
    rows = [{"premise": r["text"], "hypothesis": "the film", "label": r["label"]} for r in make_rows(30)]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    with pytest.raises(enctune.UserError, match="encoded apart"):
        enctune.train(data=str(data), out=str(tmp_path / "r"), model=str(tiny_bert_std), pair_mode="bi", **FAST)
    # encoded together, a text pair is one input: fewshot trains on it
    run = enctune.train(data=str(data), out=str(tmp_path / "ok"), model=str(tiny_bert_std), pair_mode="cross",
                        fewshot_pairs=40, **{k: v for k, v in FAST.items() if k != "fewshot_pairs"})
    assert run.metrics["strategy"] == "fewshot"
