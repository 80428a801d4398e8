"""Integration tests on the bundled default encoder (all-MiniLM-L6-v2), small SST-2 samples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import enctune
from enctune.cli import main
from enctune.encoders import default_encoder_path

from .conftest import ROOT, write_jsonl

pytestmark = pytest.mark.integration
SST2 = ROOT / "examples" / "sst2"


def _sample(split: str, n: int) -> list[dict]:
    rows = [json.loads(x) for x in (SST2 / f"{split}.jsonl").read_text().splitlines()]
    return rows[:n]


@pytest.fixture(scope="module")
def small_sst2(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("sst2")
    write_jsonl(d / "train.jsonl", _sample("train", 400))
    write_jsonl(d / "validation.jsonl", _sample("validation", 100))
    write_jsonl(d / "test.jsonl", _sample("test", 200))
    return d


def test_default_mean_pooling_matches_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    texts = ["a gorgeous, witty film", "a dull mess", "it is what it is , and that is not much"]
    ours = enctune.embed("default", texts)
    ours = ours / np.linalg.norm(ours, axis=1, keepdims=True)
    st = SentenceTransformer(str(default_encoder_path()), device="cpu").encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(ours, st, atol=1e-4)


def test_probe_on_default_encoder_learns_sentiment(small_sst2, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(small_sst2), "--strategy", "probe", "--out", str(out), "-q", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["test"]["accuracy"] >= 0.7
    assert main(["predict", str(out), "a gorgeous, witty film", "a dull, lifeless mess", "--json"]) == 0
    preds = json.loads(capsys.readouterr().out)
    assert [p["label"] for p in preds] == ["positive", "negative"]


def test_full_on_default_encoder(small_sst2, tmp_path):
    run = enctune.train(data=str(small_sst2), out=str(tmp_path / "run"), strategy="full", epochs=2, batch_size=16)
    assert run.metrics["test"]["accuracy"] >= 0.7
    c = run.metrics["costs"]
    assert c["total_params"] > 22_000_000
    assert c["trainable_params"] == c["total_params"] - 30522 * 384  # word embeddings stay frozen by default
    assert c["tokens_seen"] > 0 and c["train_flops_estimate"] > 0
    reloaded = enctune.load(tmp_path / "run")
    texts = [r["text"] for r in _sample("test", 20)]
    np.testing.assert_array_equal(run.predictor.predict_proba(texts), reloaded.predict_proba(texts))


@pytest.mark.parametrize("strategy", ["probe", "full"])
def test_the_advisors_time_and_parameters_hold_for_the_run(strategy, tmp_path):
    """advise measures this machine's training rate (training.rate) and counts what trains with the run's own
    code: the run then trains exactly the parameters advise named, in a time within 2x of its estimate, on
    either CPU kind (fp32 on AVX2, bf16 with AMX: the rate is measured at the run's precision)."""
    d = tmp_path / "data"
    for split, n in (("train", 160), ("validation", 60), ("test", 60)):
        write_jsonl(d / f"{split}.jsonl", _sample(split, n))
    advice = enctune.advise(data=str(d))
    assert advice["facts"]["rate_measured"]
    est = advice["estimates"][strategy]
    run = enctune.train(data=str(d), out=str(tmp_path / "run"), strategy=strategy)
    costs = run.metrics["costs"]
    assert costs["trainable_params"] == est["trainable_params"]
    assert 0.5 <= est["seconds"] / costs["wall_seconds"] <= 2.0, (est["seconds"], costs["wall_seconds"])
