"""Training end to end on tiny random encoders: full and probe, reload, cache, seeds, embed."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

import enctune
from enctune.cli import main
from enctune.encoders import Encoder

from .conftest import make_rows, write_jsonl

# Settings under which a tiny random encoder learns the toy task in a second or two (fp32: bf16 rounding
# moves a 40-row test split of a 32-wide random model by whole examples).
FAST = {"full": {"epochs": 8, "lr": 3e-3, "batch_size": 8, "patience": 20, "precision": "fp32"},
        "probe": {"epochs": 60, "lr": 3e-2, "batch_size": 8, "patience": 100}}


def _train(tiny, data, out, **kw):
    kw.setdefault("epochs", 3)
    return enctune.train(data=str(data), out=str(out), model=str(tiny), **kw)


@pytest.mark.parametrize("strategy", ["full", "probe"])
def test_train_writes_a_run_and_reload_predicts_identically(strategy, tiny_bert, tiny_bert_std, sentiment_dir,
                                                             tmp_path):
    out = tmp_path / "run"
    # a frozen random encoder keeps word identity in its mean-pooled features only with small weights
    tiny = tiny_bert_std if strategy == "probe" else tiny_bert
    t0 = time.perf_counter()
    run = _train(tiny, sentiment_dir, out, strategy=strategy, **FAST[strategy])
    waited = time.perf_counter() - t0
    assert (out / "model" / "encoder" / "model.safetensors").is_file()
    assert (out / "model" / "head.safetensors").is_file()
    assert not list((out / "model").rglob("*.bin")) and not list((out / "model").rglob("*.pt"))
    meta = json.loads((out / "model" / "enctune.json").read_text())
    assert meta["labels"] == ["negative", "positive"] and meta["strategy"] == strategy
    metrics = json.loads((out / "metrics.json").read_text())
    # the toy task is learnable: far above the 0.5 of a constant guess
    assert metrics["strategy"] == strategy and metrics["test"]["accuracy"] >= (0.85 if strategy == "full" else 0.7)
    for key in ("wall_seconds", "train_examples_per_second", "tokens_seen", "peak_rss_mb", "trainable_params",
                "total_params"):
        assert key in metrics["costs"]
    # where the wall time went: every phase of the run, adding up to the total; the part after start-up no
    # longer than the call took
    phases = metrics["costs"]["phases"]
    assert {"startup", "imports", "read", "load", "tokenize", "choose", "train", "validation_passes", "evaluate",
            "calibrate", "report", "write", "other", "total"} <= set(phases)
    assert "cv" not in phases and min(phases.values()) >= 0
    assert sum(v for k, v in phases.items() if k != "total") == pytest.approx(phases["total"], abs=0.1)
    assert phases["total"] - phases["startup"] <= waited + 0.05
    assert phases["train"] > 0 and phases["startup"] > 0
    if strategy == "probe":
        assert metrics["costs"]["trainable_params"] == 32 * 2 + 2
    else:  # every parameter but the frozen word-embedding matrix (vocabulary 42 x width 32)
        assert metrics["costs"]["trainable_params"] == metrics["costs"]["total_params"] - 42 * 32
    texts = [r["text"] for r in make_rows(10, seed=9)]
    before = run.predictor.predict_proba(texts)
    after = enctune.load(out).predict_proba(texts)
    np.testing.assert_array_equal(before, after)
    assert json.loads((out / "config.json").read_text())["strategy"] == strategy


def test_probe_reuses_the_feature_cache(tiny_bert, sentiment_dir, tmp_path):
    a = _train(tiny_bert, sentiment_dir, tmp_path / "a", strategy="probe")
    b = _train(tiny_bert, sentiment_dir, tmp_path / "b", strategy="probe")
    assert a.metrics["costs"]["cache_hits"] == 0 and a.metrics["costs"]["encode_tokens"] > 0
    assert b.metrics["costs"]["cache_hits"] == 3 and b.metrics["costs"]["encode_tokens"] == 0
    assert a.metrics["test"] == b.metrics["test"]


def test_corrupt_cache_entry_is_rebuilt(tiny_bert, sentiment_dir, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("ENCTUNE_CACHE", str(cache))
    a = _train(tiny_bert, sentiment_dir, tmp_path / "a", strategy="probe")
    for f in (cache / "features").glob("*.npy"):
        f.write_bytes(f.read_bytes()[:50])
    b = _train(tiny_bert, sentiment_dir, tmp_path / "b", strategy="probe")
    assert b.metrics["costs"]["cache_hits"] == 0
    assert a.metrics["test"] == b.metrics["test"]


def test_same_seed_same_metrics(tiny_bert, sentiment_dir, tmp_path):
    a = _train(tiny_bert, sentiment_dir, tmp_path / "a", strategy="full", epochs=2)
    b = _train(tiny_bert, sentiment_dir, tmp_path / "b", strategy="full", epochs=2)
    assert a.metrics["history"] == b.metrics["history"]
    assert a.metrics["test"] == b.metrics["test"]


def test_auto_picks_probe_for_tiny_classes(tiny_bert, tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", make_rows(12))  # 6 per class
    # a validation split of its own, big enough to rank by: the advisor's rule decides (carved from these 12
    # rows, auto would cross-validate the candidates instead: tests/test_select.py)
    val = write_jsonl(tmp_path / "validation.jsonl", make_rows(60, seed=5))
    run = _train(tiny_bert, data, tmp_path / "run", epochs=2, validation=str(val))
    assert run.metrics["strategy"] == "probe" and "smallest class" in run.metrics["strategy_reason"]


def test_class_weights_balanced(tiny_bert, tmp_path):
    rows = make_rows(60)
    rows = [r for r in rows if r["label"] == "positive"] + [r for r in rows if r["label"] == "negative"][:10]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    run = _train(tiny_bert, data, tmp_path / "run", strategy="probe", class_weights="balanced")
    w = run.predictor.task.class_weights
    assert w is not None and w[0] > w[1]  # the rarer 'negative' class weighs more


def test_text_pair_and_integer_labels(tiny_bert, tmp_path):
    rows = [{"premise": r["text"], "hypothesis": "the film", "label": int(r["label"] == "positive")}
            for r in make_rows(60)]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    run = _train(tiny_bert, data, tmp_path / "run", strategy="probe", epochs=5)
    model = enctune.load(tmp_path / "run")
    pred = model.predict(["good film"], pairs=["the film"])
    assert pred[0]["label"] in (0, 1)
    assert set(pred[0]["probabilities"]) == {"0", "1"}
    assert run.metrics["data"]["labels"] == ["0", "1"]
    with pytest.raises(enctune.UserError, match="text pairs"):
        model.predict(["good film"])


def test_causal_encoder_uses_last_token_pooling(tiny_gpt2, sentiment_dir, tmp_path):
    enc = Encoder.load(str(tiny_gpt2))
    assert enc.pooling == "last"
    run = _train(tiny_gpt2, sentiment_dir, tmp_path / "run", strategy="full", epochs=1)
    assert json.loads((tmp_path / "run" / "model" / "enctune.json").read_text())["pooling"] == "last"
    assert run.metrics["test"]["accuracy"] >= 0.0


def test_config_file_is_overridden_by_flags(tiny_bert, sentiment_dir, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model: {tiny_bert}\nstrategy: probe\nepochs: 2\nseed: 7\n")
    run = enctune.train(config_file=str(cfg), data=str(sentiment_dir), out=str(tmp_path / "r"), epochs=3)
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["strategy"] == "probe" and saved["seed"] == 7 and saved["epochs"] == 3
    assert run.metrics["strategy"] == "probe"


def test_cli_train_predict_evaluate_embed(tiny_bert, sentiment_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(sentiment_dir), "--out", str(out), "--model", str(tiny_bert),
                 "--strategy", "probe", "--epochs", "40", "--lr", "1e-2", "--batch-size", "8", "--quiet",
                 "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["test"]["accuracy"] > 0.5
    assert main(["predict", str(out), "good film", "bad film", "--json"]) == 0
    preds = json.loads(capsys.readouterr().out)
    assert len(preds) == 2 and set(preds[0]) == {"label", "probabilities"}
    assert abs(sum(preds[0]["probabilities"].values()) - 1) < 1e-6
    preds_file = tmp_path / "p.jsonl"
    assert main(["predict", str(out), "--input", str(sentiment_dir / "test.jsonl"), "--output", str(preds_file),
                 "-q"]) == 0
    lines = preds_file.read_text().splitlines()
    assert len(lines) == 40 and json.loads(lines[0])["label"] in ("positive", "negative")
    assert main(["evaluate", str(out), "--data", str(sentiment_dir / "test.jsonl"), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    for ext in ("npy", "jsonl", "parquet"):
        vec = tmp_path / f"v.{ext}"
        assert main(["embed", "--model", str(out), "--input", str(sentiment_dir / "test.jsonl"),
                     "--output", str(vec), "-q"]) == 0
        assert vec.is_file()
    arr = np.load(tmp_path / "v.npy")
    assert arr.shape == (40, 32)
    first = json.loads((tmp_path / "v.jsonl").read_text().splitlines()[0])
    np.testing.assert_allclose(first["embedding"], arr[0], atol=1e-5)


def test_embed_layers_and_poolings(tiny_bert):
    texts = ["good film", "a really dull and boring movie"]
    emb0 = enctune.embed(str(tiny_bert), texts, layer=0, pooling="mean")
    emb_last = enctune.embed(str(tiny_bert), texts, layer=-1, pooling="mean")
    emb_cls = enctune.embed(str(tiny_bert), texts, pooling="cls")
    assert emb0.shape == emb_last.shape == emb_cls.shape == (2, 32)
    assert not np.allclose(emb0, emb_last) and not np.allclose(emb_cls, emb_last)
    # a text embedded alone or in a batch with longer texts gets the same vector (padding is masked)
    alone = enctune.embed(str(tiny_bert), texts[:1], pooling="mean")
    np.testing.assert_allclose(alone[0], enctune.embed(str(tiny_bert), texts, pooling="mean")[0], atol=1e-5)
    with pytest.raises(enctune.UserError, match="layers 0"):
        enctune.embed(str(tiny_bert), texts, layer=7)
    # one bare string is one text, not a list of characters
    assert enctune.embed(str(tiny_bert), "good film").shape == (1, 32)


def test_truncation_is_counted(tiny_bert, tmp_path):
    rows = make_rows(40)
    rows[0]["text"] = " ".join(["good"] * 200)
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    with pytest.warns(UserWarning, match="cut at --max-length"):
        run = _train(tiny_bert, data, tmp_path / "r", strategy="probe", epochs=1, max_length=16)
    assert sum(run.metrics["costs"]["truncated_texts"].values()) == 1


def test_train_embeddings_flag_unfreezes_them(tiny_bert, sentiment_dir, tmp_path):
    run = _train(tiny_bert, sentiment_dir, tmp_path / "r", strategy="full", epochs=1, freeze_embeddings=False)
    assert run.metrics["costs"]["trainable_params"] == run.metrics["costs"]["total_params"]


def test_hf_sequence_classifier_folder_predicts_through_enctune(tiny_bert, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = tmp_path / "hf"
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_bert, num_labels=2, id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1})
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(folder)
    texts = ["good film", "a really dull and boring movie", "bad", "the plot was superb and the acting lovely"]
    enc = AutoTokenizer.from_pretrained(folder)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = torch.softmax(model.eval()(**enc).logits, -1).numpy()
    pred = enctune.load(folder)
    assert pred.labels == ["neg", "pos"]
    np.testing.assert_allclose(pred.predict_proba(texts), expected, atol=1e-5)


def test_int8_prediction_agrees_with_fp32(tiny_bert, sentiment_dir, tmp_path):
    _train(tiny_bert, sentiment_dir, tmp_path / "r", strategy="full", **FAST["full"])
    texts = [r["text"] for r in make_rows(60, seed=11)]
    exact = enctune.load(tmp_path / "r").predict_proba(texts)
    fast = enctune.load(tmp_path / "r", precision="int8")
    assert fast.precision == "int8"
    approx = fast.predict_proba(texts)
    assert (approx.argmax(1) == exact.argmax(1)).mean() >= 0.9
    assert np.abs(approx - exact).max() < 0.2
    with pytest.raises(enctune.UserError, match="--precision"):
        enctune.load(tmp_path / "r", precision="fp4")


def test_token_budget_batches_cover_every_index_once():
    from enctune.model import token_budget_batches

    lengths = np.array([5, 50, 7, 3, 50, 20, 1, 9])
    batches = token_budget_batches(lengths, max_tokens=100, max_batch=3)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    for b in batches:
        assert len(b) <= 3 and len(b) * lengths[b].max() <= max(100, lengths[b].max())


@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_reduced_precision_rescores_unsure_texts_in_fp32(precision, tiny_bert, sentiment_dir, tmp_path):
    _train(tiny_bert, sentiment_dir, tmp_path / "r", strategy="full", **FAST["full"])
    texts = [r["text"] for r in make_rows(60, seed=11)]
    exact = enctune.load(tmp_path / "r").predict_proba(texts)
    everything = enctune.load(tmp_path / "r", precision=precision)
    everything.refine_below = 1.01  # every text is unsure: all answers are fp32's
    np.testing.assert_allclose(everything.predict_proba(texts), exact, atol=1e-6)
    assert everything.refined == len(texts)
    raw = enctune.load(tmp_path / "r", precision=precision)
    raw.refine_below = 0.0  # nobody re-scored: the reduced-precision answers
    approx = raw.predict_proba(texts)
    assert raw.refined == 0
    default = enctune.load(tmp_path / "r", precision=precision)
    mixed = default.predict_proba(texts)
    unsure = approx.max(1) < default.refine_below
    assert default.refined == int(unsure.sum())
    np.testing.assert_allclose(mixed[unsure], exact[unsure], atol=1e-6)
    np.testing.assert_array_equal(mixed[~unsure], approx[~unsure])


def test_bf16_prediction_runs_a_bf16_copy_and_keeps_the_fp32_model(tiny_bert, sentiment_dir, tmp_path):
    import torch

    _train(tiny_bert, sentiment_dir, tmp_path / "r", strategy="full", **FAST["full"])
    texts = [r["text"] for r in make_rows(40, seed=12)]
    exact = enctune.load(tmp_path / "r").predict_proba(texts)
    fast = enctune.load(tmp_path / "r", precision="bf16")
    fast.refine_below = 0.0
    assert {p.dtype for p in fast.model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in fast.fp32_model.parameters()} == {torch.float32}
    approx = fast.predict_proba(texts)
    assert np.abs(approx - exact).max() < 0.05
