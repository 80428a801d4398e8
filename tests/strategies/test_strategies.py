"""Every registered strategy, swept: train on a tiny random encoder, save, reload, predict identically.

A new strategy module is picked up here by its registration alone: the sweep fails until it
round-trips through the model folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

import enctune
from enctune.strategies import STRATEGIES

from ..conftest import make_rows

# settings under which each strategy learns something on the toy task in a second or two
FAST = {"epochs": 4, "lr": 3e-3, "batch_size": 8, "precision": "fp32"}
SETTINGS = {
    "zeroshot": {"precision": "fp32"},
    "probe": {**FAST, "epochs": 40, "lr": 3e-2},
    "fewshot": {**FAST, "fewshot_pairs": 64},
}


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_strategy_round_trips_through_the_model_folder(strategy, tiny_bert_std, sentiment_dir, tmp_path):
    out = tmp_path / "run"
    run = enctune.train(data=str(sentiment_dir), out=str(out), model=str(tiny_bert_std), strategy=strategy,
                        **SETTINGS.get(strategy, FAST))
    meta = json.loads((out / "model" / "enctune.json").read_text())
    assert meta["strategy"] == strategy == run.metrics["strategy"]
    texts = [r["text"] for r in make_rows(12, seed=11)]
    before = run.predictor.predict_proba(texts)
    model = enctune.load(out)
    after = model.predict_proba(texts)
    np.testing.assert_allclose(before, after, rtol=0, atol=1e-6)
    assert [p["label"] for p in run.predictor.predict(texts)] == [p["label"] for p in model.predict(texts)]
    # the folder holds safetensors and JSON only
    assert not [f for f in (out / "model").rglob("*") if f.suffix in (".bin", ".pt", ".pkl", ".pth")]
    c = run.metrics["costs"]
    assert 0 <= c["trainable_params"] <= c["total_params"]
    if strategy == "zeroshot":
        assert c["trainable_params"] == 0
    # the advisor counts what trains with the code the run selects it with: the same figure
    advice = enctune.advise(data=str(sentiment_dir), model=str(tiny_bert_std), **SETTINGS.get(strategy, FAST))
    assert advice["estimates"][strategy]["trainable_params"] == c["trainable_params"]


@pytest.mark.parametrize("options", [{}, {"lora_r": 4, "lora_targets": "c_attn"}])
def test_the_advisor_counts_lora_adapters_exactly_on_a_transposed_network(options, tiny_gpt2_std, sentiment_dir,
                                                                         tmp_path):
    """GPT-2's Conv1D holds W as (d_in, d_out): the count must not care which way round."""
    settings = {**FAST, "strategy": "lora", **options}
    run = enctune.train(data=str(sentiment_dir), out=str(tmp_path / "run"), model=str(tiny_gpt2_std), **settings)
    advice = enctune.advise(data=str(sentiment_dir), model=str(tiny_gpt2_std), **settings)
    assert advice["estimates"]["lora"]["trainable_params"] == run.metrics["costs"]["trainable_params"]
