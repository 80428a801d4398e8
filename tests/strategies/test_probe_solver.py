"""The probe's full-batch head solver and the encoder that loads its network on first use."""

from __future__ import annotations

import json

import numpy as np
import torch
from torch.nn import functional as F

import enctune
from enctune.encoders import Encoder
from enctune.strategies.probe import L2_PATH, L2Solver


def test_l2_solver_matches_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    n, d, k = 300, 8, 3
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.8, size=n) > 0).astype(int) + (x[:, 2] > 1)
    head = torch.nn.Linear(d, k)
    strength = 0.01
    fit = L2Solver(head, F.cross_entropy, torch.from_numpy(x), torch.from_numpy(y)).solve(strength)
    assert fit.success
    # scikit-learn minimises 0.5 ||W||^2 + C * sum(CE): the same optimum as mean(CE) + ||W||^2 / (2 C n)
    ref = LogisticRegression(C=1 / (2 * strength * n), tol=1e-10, max_iter=10_000).fit(x, y)
    with torch.no_grad():
        ours = torch.softmax(head(torch.from_numpy(x)), -1).numpy()
    assert np.abs(ours - ref.predict_proba(x)).max() < 2e-3


def test_a_unit_head_reads_directions_only():
    from enctune.tasks.heads import linear_head

    head = linear_head(8, 3, 0.0, "cross", "unit").eval()
    h = torch.randn(5, 8)
    assert torch.allclose(head(h), head(h * torch.tensor([[0.5], [2.0], [7.0], [1.0], [30.0]])), atol=1e-5)
    assert not torch.allclose(linear_head(8, 3, 0.0, "cross").eval()(h), linear_head(8, 3, 0.0, "cross").eval()(2 * h))


def _train(tiny_bert, data, out, **kw):
    return enctune.train(data=str(data), out=str(out), model=str(tiny_bert), strategy="probe", **kw)


def test_probe_solves_its_head_on_a_path_of_strengths(tiny_bert, sentiment_dir, tmp_path):
    run = _train(tiny_bert, sentiment_dir, tmp_path / "a")
    hist = run.metrics["history"]
    assert [h["l2"] for h in hist] == list(L2_PATH[:len(hist)]) and len(hist) >= 3
    best = max(hist, key=lambda h: h["score"])
    assert run.metrics["validation"]["accuracy"] == best["score"]  # the kept head is the best strength's
    assert all(h["iterations"] >= 1 for h in hist) and run.metrics["loss_curve"]
    # another seed only changes where the head starts: each strength's solve reaches the same optimum
    again = _train(tiny_bert, sentiment_dir, tmp_path / "b", seed=7).metrics["history"]
    assert len(again) == len(hist)
    assert all(abs(a["train_loss"] - h["train_loss"]) < 1e-4 for a, h in zip(again, hist, strict=True))


def test_the_loop_still_trains_heads_that_start_from_descriptions(tiny_bert, sentiment_dir, tmp_path):
    run = _train(tiny_bert, sentiment_dir, tmp_path / "a", labels="positive: good;negative: bad", epochs=5)
    assert run.metrics["history"] and all("l2" not in h for h in run.metrics["history"])
    sgd = _train(tiny_bert, sentiment_dir, tmp_path / "b", head_solver="sgd", epochs=5)
    assert all("l2" not in h for h in sgd.metrics["history"])


def test_a_warm_probe_never_builds_the_network(tiny_bert, sentiment_dir, tmp_path):
    first = _train(tiny_bert, sentiment_dir, tmp_path / "cold")
    assert first.metrics["costs"]["cache_hits"] == 0
    warm = _train(tiny_bert, sentiment_dir, tmp_path / "warm")
    assert warm.metrics["costs"]["cache_hits"] == 3
    assert not warm.predictor.encoder.loaded
    assert warm.metrics["costs"]["total_params"] == first.metrics["costs"]["total_params"]
    texts = ["good good movie", "bad film"]
    assert warm.predictor.predict(texts) == first.predictor.predict(texts)  # builds it now, on demand
    assert warm.predictor.encoder.loaded
    saved = enctune.load(tmp_path / "warm")
    assert saved.predict(texts) == first.predictor.predict(texts)
    meta = json.loads((tmp_path / "warm" / "model" / "enctune.json").read_text())
    assert meta["strategy"] == "probe"


def test_lazy_encoder_builds_on_first_use_with_the_mode_and_freezing_it_was_given(tiny_bert):
    enc = Encoder.load(str(tiny_bert), lazy=True)
    eager = Encoder.load(str(tiny_bert))
    assert not enc.loaded and enc.hidden_size == eager.hidden_size and enc.num_layers == eager.num_layers
    assert enc.num_params() == sum(p.numel() for p in eager.parameters())  # from the weight file's header
    enc.train()
    enc.freeze()
    assert not enc.loaded
    params = list(enc.parameters())  # builds it
    assert enc.loaded and enc.model.training and params and not any(p.requires_grad for p in params)
    tok = enc.tokenize(["good movie"])
    a = enc.encode(tok)[(-1, enc.pooling)]
    b = eager.encode(tok)[(-1, eager.pooling)]
    assert np.allclose(a, b, atol=1e-6)


def test_lbfgs_and_golden_section_find_known_minima():
    from enctune.optim import golden_section, lbfgs

    # an ill-conditioned quadratic: minimum at c, condition number 1e3
    scales = np.logspace(0, 3, 20)
    c = np.linspace(-1, 1, 20)
    fit = lbfgs(lambda v: (float(0.5 * np.sum(scales * (v - c) ** 2)), scales * (v - c)), np.zeros(20),
                max_iter=1000, gtol=1e-7, ftol=0)
    assert fit.success and np.abs(fit.x - c).max() < 1e-6
    # Rosenbrock: curved valley, minimum at (1, 1)
    def rosen(v):
        x, y = v
        return float((1 - x) ** 2 + 100 * (y - x * x) ** 2), np.array([-2 * (1 - x) - 400 * x * (y - x * x),
                                                                      200 * (y - x * x)])
    assert np.abs(lbfgs(rosen, np.array([-1.2, 1.0]), max_iter=1000, gtol=1e-9, ftol=0).x - 1).max() < 1e-4
    assert abs(golden_section(lambda u: (u - 0.3) ** 2 + 1, -4, 4, tol=1e-7) - 0.3) < 1e-6


def test_tokenizing_through_the_backend_gives_the_tokenizers_own_ids(tiny_bert):
    enc = Encoder.load(str(tiny_bert), max_length=8, lazy=True)
    texts = ["good movie", "a bad bad bad bad bad bad bad bad film", ""]
    pairs = ["fine", "good good good good good good", "bad"]
    for args in ((texts, None), (texts, pairs)):
        ours = enc.tokenize(*args)
        ref = enc.tokenizer(*(a for a in args if a is not None), truncation=True, max_length=8)
        assert ours.input_ids == ref["input_ids"] and ours.token_type_ids == ref["token_type_ids"]
        assert max(len(x) for x in ours.input_ids) == 8 and ours.truncated >= 1


def test_file_digests_are_remembered_until_the_file_changes(tmp_path, monkeypatch):
    import os
    import shutil

    from enctune.encoders import resolve

    monkeypatch.setenv("ENCTUNE_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    weights = folder / "model.safetensors"
    weights.write_bytes(b"a" * 1000)
    resolve._file_digest.cache_clear()
    first = resolve.fingerprint(str(folder))
    memos = list((tmp_path / "cache" / "digests").iterdir())
    assert len(memos) == 2  # one per hashed file
    resolve._file_digest.cache_clear()
    assert resolve.fingerprint(str(folder)) == first  # read back from the memo
    weights.write_bytes(b"b" * 1000)  # same size, new content and mtime
    os.utime(weights, ns=(1, 10**18))
    resolve._file_digest.cache_clear()
    assert resolve.fingerprint(str(folder)) != first
    for m in (tmp_path / "cache" / "digests").iterdir():
        m.write_text("garbage")  # a damaged memo is recomputed, not trusted
    resolve._file_digest.cache_clear()
    again = resolve.fingerprint(str(folder))
    shutil.rmtree(tmp_path / "cache" / "digests")
    resolve._file_digest.cache_clear()
    assert again == resolve.fingerprint(str(folder))  # what hashing from scratch gives
