"""The mechanics behind the strategies: partial freezing, layer-wise rates, label descriptions and the
head they start, the prior toward it, which weights are kept, the step floor, the budget ladder and
the advisor."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import enctune
from enctune.cli import main
from enctune.encoders import Encoder
from enctune.strategies.full import layer_depth, layer_lr_scales
from enctune.strategies.labels import label_embeddings, parse_descriptions
from enctune.training.loop import param_groups

from ..conftest import make_rows, write_jsonl

FP32 = {"precision": "fp32"}


def _train(tiny, data, out, **kw):
    return enctune.train(data=str(data), out=str(out), model=str(tiny), **{**FP32, **kw})


def _encoder_weights(folder) -> dict[str, torch.Tensor]:
    return load_file(str(next(folder.glob("*.safetensors"))))


def test_partial_trains_only_the_top_layers(tiny_bert, sentiment_dir, tmp_path):
    run = _train(tiny_bert, sentiment_dir, tmp_path / "run", strategy="partial", unfreeze_layers=1, epochs=3,
                 lr=3e-3, batch_size=8)
    before = _encoder_weights(tiny_bert)
    after = _encoder_weights(tmp_path / "run" / "model" / "encoder")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(".layer.1." in k for k in changed)  # layer 1 is the top one of two
    assert any(".layer.1." in k and "attention" in k for k in changed)
    c = run.metrics["costs"]
    layer1 = sum(v.numel() for k, v in before.items() if ".layer.1." in k)
    assert c["trainable_params"] == layer1 + 32 * 2 + 2  # the top layer and the head
    np.testing.assert_array_equal(run.predictor.predict_proba(["good film"]),
                                  enctune.load(tmp_path / "run").predict_proba(["good film"]))


def test_partial_refuses_more_layers_than_the_encoder_has(tiny_bert, sentiment_dir, tmp_path):
    with pytest.raises(enctune.UserError, match="has 2 layers"):
        _train(tiny_bert, sentiment_dir, tmp_path / "run", strategy="partial", unfreeze_layers=5, epochs=1)
    assert not (tmp_path / "run").exists()


def test_layer_depth_and_decayed_rates():
    assert layer_depth("encoder.model.embeddings.word_embeddings.weight", 6) == 0
    assert layer_depth("encoder.model.encoder.layer.0.attention.self.query.weight", 6) == 1
    assert layer_depth("encoder.model.h.5.attn.c_attn.weight", 6) == 6
    assert layer_depth("encoder.model.layers.2.mlp.up_proj.weight", 6) == 3
    assert layer_depth("head.1.weight", 6) == 7

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embeddings = torch.nn.Linear(2, 2)
            self.layer = torch.nn.ModuleList([torch.nn.Linear(2, 2) for _ in range(2)])
            self.head = torch.nn.Linear(2, 2)

    m = M()
    # names here have no dot before "layer": match on the form models use inside an encoder
    scales = layer_lr_scales(torch.nn.ModuleDict({"x": m}), 2, 0.5)
    assert scales["x.head.weight"] == 1.0
    assert scales["x.layer.1.weight"] == 0.5 and scales["x.layer.0.weight"] == 0.25
    assert scales["x.embeddings.weight"] == 0.125
    assert layer_lr_scales(m, 2, None) is None
    groups = param_groups(torch.nn.ModuleDict({"x": m}), 1e-3, 0.01, scales)
    by_lr = {round(g["lr"], 8): g for g in groups}
    assert set(by_lr) == {1e-3, 5e-4, 2.5e-4, 1.25e-4}
    assert all(g["weight_decay"] in (0.0, 0.01) for g in groups)
    assert sum(len(g["params"]) for g in groups) == len(list(m.parameters()))


def test_layer_lr_decay_reaches_the_optimizer(tiny_bert, sentiment_dir, tmp_path):
    run = _train(tiny_bert, sentiment_dir, tmp_path / "run", strategy="full", layer_lr_decay=0.5, epochs=1)
    assert run.metrics["history"]  # trained; the rates themselves are checked above
    with pytest.raises(enctune.UserError, match="layer-lr-decay"):
        _train(tiny_bert, sentiment_dir, tmp_path / "x", strategy="probe", layer_lr_decay=0.5)


def test_parse_descriptions():
    assert parse_descriptions("positive: a happy customer|loved it; negative: an angry customer;neutral") == {
        "positive": ["a happy customer", "loved it"], "negative": ["an angry customer"], "neutral": []}
    with pytest.raises(enctune.UserError, match="twice"):
        parse_descriptions("a: x;a: y")
    with pytest.raises(enctune.UserError, match="no label name"):
        parse_descriptions(": x")


def test_label_embeddings_average_phrasings(tiny_bert):
    enc = Encoder.load(str(tiny_bert))

    class T:
        labels = ["positive", "negative"]

    emb = label_embeddings(enc, T(), "positive: good film|great film", "it was {}")
    v = enc.encode(enc.tokenize(["it was good film", "it was great film", "it was negative"]))[(-1, "mean")]
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    pos = v[0] + v[1]
    np.testing.assert_allclose(emb[0], pos / np.linalg.norm(pos), atol=1e-5)
    np.testing.assert_allclose(emb[1], v[2], atol=1e-5)  # no description: the label's own name
    with pytest.raises(enctune.UserError, match="not among the data's labels"):
        label_embeddings(enc, T(), "neutral: meh", None)


def test_head_starts_from_the_descriptions_and_the_prior_keeps_it_near(tiny_bert_std, tmp_path, monkeypatch):
    data = write_jsonl(tmp_path / "train.jsonl", make_rows(16))
    labels = "positive: good great superb|lovely fine;negative: bad awful|dull boring"
    kw = dict(strategy="probe", labels=labels, epochs=60, lr=3e-2, batch_size=8)

    def distance(run_dir):
        meta = json.loads((run_dir / "model" / "enctune.json").read_text())
        assert meta["task_options"]["head"] == "cosine"
        w = load_file(str(run_dir / "model" / "head.safetensors"))["1.weight"].numpy()
        enc = Encoder.load(str(tiny_bert_std))
        task = enctune.load(run_dir).task
        e = label_embeddings(enc, task, labels, None)
        w = w / np.linalg.norm(w, axis=1, keepdims=True)
        return float(np.linalg.norm(w - e) / np.linalg.norm(e))

    _train(tiny_bert_std, data, tmp_path / "prior", **kw)
    import enctune.strategies.probe as probe

    monkeypatch.setattr(probe, "PRIOR_STRENGTH", 0.0)
    _train(tiny_bert_std, data, tmp_path / "free", **kw)
    near, free = distance(tmp_path / "prior"), distance(tmp_path / "free")
    assert near < 0.5 * free


def test_init_head_labels_only_for_classify(tiny_bert, tmp_path):
    rows = [{"text": r["text"], "label": float(i % 7) + 0.5} for i, r in enumerate(make_rows(60))]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    with pytest.raises(enctune.UserError, match="has no head that starts from label descriptions"):
        _train(tiny_bert, data, tmp_path / "run", strategy="probe", init_head="labels", task="regress")


def test_small_carved_validation_keeps_the_last_weights(tiny_bert, tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", make_rows(100))  # 10 rows carved off for validation
    run = _train(tiny_bert, data, tmp_path / "run", strategy="full", epochs=6, patience=1, lr=3e-3, batch_size=8)
    assert run.metrics["costs"]["epochs_run"] == 6 and not run.metrics["costs"]["stopped_early"]
    best = _train(tiny_bert, data, tmp_path / "best", strategy="full", epochs=6, patience=1, lr=3e-3,
                  batch_size=8, keep="best")
    assert best.metrics["costs"]["epochs_run"] <= 6


def test_step_floor_gives_small_sets_enough_steps(tiny_bert, tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", make_rows(64))
    run = _train(tiny_bert, data, tmp_path / "run", strategy="full", batch_size=16)
    assert run.metrics["costs"]["steps"] >= 32  # 58 rows, 4 steps an epoch: 8 epochs, not 3
    fixed = _train(tiny_bert, data, tmp_path / "fixed", strategy="full", batch_size=16, epochs=3)
    assert fixed.metrics["costs"]["steps"] == 12


@pytest.mark.parametrize("flags, message", [
    ({"budget": "soon"}, "expected a duration"),
    ({"template": "no slot"}, "exactly once"),
    ({"strategy": "probe", "unfreeze_layers": 2}, "--unfreeze-layers: for --strategy partial"),
    ({"strategy": "full", "lora_r": 4}, "--lora-r: for --strategy lora"),
    ({"strategy": "probe", "fewshot_pairs": 40}, "--fewshot-pairs: for --strategy fewshot"),
])
def test_invalid_combinations_are_refused(flags, message, tiny_bert, sentiment_dir, tmp_path):
    with pytest.raises(enctune.UserError, match=message):
        _train(tiny_bert, sentiment_dir, tmp_path / "run", **flags)
    assert not (tmp_path / "run").exists()


def test_budget_ladder_keeps_the_best_and_writes_its_table(tiny_bert_std, sentiment_dir, tmp_path, capsys):
    code = main(["train", "--data", str(sentiment_dir), "--model", str(tiny_bert_std), "--out",
                 str(tmp_path / "run"), "--budget", "10m", "--epochs", "2", "--precision", "fp32", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    table = metrics["strategy_table"]
    tried = [r for r in table if "score" in r]
    assert len(tried) >= 3 and {"probe", "full"} <= {r["strategy"] for r in tried}
    kept = [r for r in table if r["status"].endswith("kept")]
    assert len(kept) == 1 and kept[0]["strategy"] == metrics["strategy"]
    assert kept[0]["score"] == max(r["score"] for r in tried)
    assert metrics["validation"]["accuracy"] == pytest.approx(kept[0]["score"])
    assert "strategy" in printed and "kept" in printed
    report = (tmp_path / "run" / "report.html").read_text()
    assert "Strategies compared" in report and "kept" in report
    # the saved model is the kept rung's: it reloads and predicts as the run did
    model = enctune.load(tmp_path / "run")
    assert model.meta["strategy"] == metrics["strategy"]


def test_a_ladder_rung_trains_as_a_run_of_its_strategy_with_the_seed(tiny_bert_std, sentiment_dir, tmp_path):
    """Each rung starts from the run's seed, not from wherever the rungs before it left the generators: the
    ladder's full rung scores what a plain full run with that seed scores."""
    kw = dict(epochs=2, precision="fp32", seed=3)
    ladder = _train(tiny_bert_std, sentiment_dir, tmp_path / "ladder", budget="10m", **kw)
    (rung,) = [r for r in ladder.metrics["strategy_table"] if r["strategy"] == "full"]
    plain = _train(tiny_bert_std, sentiment_dir, tmp_path / "plain", strategy="full", **kw)
    assert rung["score"] == pytest.approx(plain.metrics["validation"]["accuracy"], abs=1e-6)
    assert rung["trainable_params"] == plain.metrics["costs"]["trainable_params"]


def test_budget_ladder_skips_what_does_not_fit(tiny_bert_std, sentiment_dir, tmp_path, monkeypatch):
    import enctune.strategies.base as base

    # a machine this slow makes every estimate far beyond the budget: the first trainable rung still runs
    monkeypatch.setattr(base, "CPU_TOKENS_PER_SEC_PER_CORE", 1e-3)
    monkeypatch.setattr("enctune.training.rate.measured_rate", lambda *a, **k: 1e-3)
    run = _train(tiny_bert_std, sentiment_dir, tmp_path / "run", budget="10m", epochs=2)
    table = run.metrics["strategy_table"]
    ran = [r["strategy"] for r in table if "score" in r]
    assert ran == ["probe"] or ran == ["zeroshot", "probe"]
    skipped = [r for r in table if r["status"].startswith("skipped")]
    assert {"partial", "full"} <= {r["strategy"] for r in skipped}
    assert all("estimated" in r["status"] for r in skipped)


def test_budget_limits_a_single_strategy(tiny_bert, sentiment_dir, tmp_path):
    run = _train(tiny_bert, sentiment_dir, tmp_path / "run", strategy="full", budget="0.001s", epochs=50,
                 batch_size=8)
    assert run.metrics["strategy"] == "full" and "strategy_table" not in run.metrics
    assert run.metrics["costs"]["stopped_early"] and run.metrics["costs"]["epochs_run"] < 1


def test_a_spent_budget_still_trains_a_head_on_fixed_features(tiny_bert_std, sentiment_dir, tmp_path):
    kw = dict(strategy="probe", epochs=40, lr=3e-2, batch_size=8)
    free = _train(tiny_bert_std, sentiment_dir, tmp_path / "free", **kw)
    spent = _train(tiny_bert_std, sentiment_dir, tmp_path / "spent", budget="0.001s", **kw)
    assert spent.metrics["history"] == free.metrics["history"] and spent.metrics["test"] == free.metrics["test"]


def test_loop_stops_at_the_deadline():
    import time

    from torch.utils.data import DataLoader

    from enctune.model import HeadModel
    from enctune.training.batching import ShuffledBatches
    from enctune.training.loop import LoopConfig, fit

    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    loader = DataLoader(range(64), batch_sampler=ShuffledBatches(64, 8, 0),
                        collate_fn=lambda idx: {"features": x[torch.as_tensor(idx)], "labels": y[idx]})
    model = HeadModel(torch.nn.Linear(4, 2))
    cfg = LoopConfig(epochs=5, lr=1e-2, deadline=time.monotonic() - 1, eval_every=2)
    result = fit(model, loader, torch.nn.functional.cross_entropy, lambda m: (0.0, {}), cfg)
    assert result.out_of_time and result.stopped_early
    assert result.steps == 1  # one step, an evaluation, then the deadline ends it


def test_advise_prints_a_recommendation_and_estimates(tiny_bert, tmp_path, capsys):
    data = write_jsonl(tmp_path / "train.jsonl", make_rows(12))
    assert main(["advise", "--data", str(data), "--model", str(tiny_bert), "--json"]) == 0
    a = json.loads(capsys.readouterr().out)
    assert a["strategy"] == "probe" and "smallest class" in a["reason"]
    assert a["facts"]["smallest_class"] == 5 and a["facts"]["train_examples"] == 11
    assert {"probe", "partial", "full"} <= set(a["estimates"])
    assert a["estimates"]["probe"]["trainable_params"] < a["estimates"]["full"]["trainable_params"]
    assert main(["advise", "--data", str(data), "--model", str(tiny_bert), "--budget", "2m"]) == 0
    out = capsys.readouterr().out
    assert "recommended: probe" in out and "tries" in out
    assert main(["advise", "--data", str(tmp_path / "missing.jsonl")]) == 2
