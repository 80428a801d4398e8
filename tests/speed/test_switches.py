"""The speed patches' switches: each patch, switched off with ENCTUNE_DISABLE, leaves the stock path; a patch
outside the library versions it was tested with falls back by itself and says so once."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from enctune import speed
from enctune.encoders import Encoder
from enctune.speed import allocator, bf16, clip, dropout, first_token, lazy, tokenizer
from enctune.strategies.full import kept_outputs


def _stock_dropout(tiny_bert) -> bool:
    enc = Encoder.load(str(tiny_bert))
    enc.train()
    with dropout.installed(enc, "cpu"):
        return all(type(m) is not dropout.FastDropout for m in enc.modules())


def _stock_pooler(tiny_bert) -> bool:
    enc = Encoder.load(str(tiny_bert))
    out = enc.model(input_ids=torch.tensor([[2, 5, 3]]), attention_mask=torch.ones(1, 3, dtype=torch.long))
    return out.pooler_output is not None


def _stock_residual(tiny_bert) -> bool:
    enc = Encoder.load(str(tiny_bert))
    with bf16.embeddings_in_autocast_dtype(enc, "cpu"):
        return all(not m._forward_hooks for m in enc.modules() if isinstance(m, nn.Embedding))


def _stock_clip(tiny_bert) -> bool:
    p = nn.Parameter(torch.ones(3))
    opt = torch.optim.AdamW([p], fused=True)
    p.grad = torch.full((3,), 10.0)
    clip.gradient_clipper(opt, [p], 1.0, plain=True)()
    return not hasattr(opt, "grad_scale") or opt.grad_scale is None  # clip_grad_norm_ rewrote the gradient


def _stock_first_token(tiny_bert) -> bool:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert), num_labels=2)
    return first_token.wrap_last_layer(model) is None


def _stock_tokenizer(tiny_bert) -> bool:
    enc = Encoder.load(str(tiny_bert), lazy=True)
    return tokenizer.backend_ids(enc.tokenizer, ["good"], None, 8) == (None, None)


def _stock_copy(tiny_bert) -> bool:
    module = nn.Linear(2, 2)
    return bf16.bf16_copy(module) is module


def _stock_lazy(tiny_bert) -> bool:
    return Encoder.load(str(tiny_bert), lazy=True).loaded


def _stock_malloc(tiny_bert) -> bool:
    return allocator._apply() is False


def _stock_reuse(tiny_bert) -> bool:
    loop = SimpleNamespace(history=[{"step": 4}, {"step": 8}], kept_step=4)
    return kept_outputs(loop, ["at 4", "at 8"], SimpleNamespace(precision="fp32")) == {}


STOCK = {"fast_dropout": _stock_dropout, "no_pooler": _stock_pooler, "bf16_residual": _stock_residual,
         "fused_clip": _stock_clip, "first_token": _stock_first_token, "tokenizer_backend": _stock_tokenizer,
         "bf16_copy": _stock_copy, "lazy_network": _stock_lazy, "malloc": _stock_malloc,
         "reuse_validation": _stock_reuse}


def test_every_patch_has_a_stock_path_check():
    assert set(STOCK) == set(speed.PATCHES)


@pytest.mark.parametrize("name", sorted(speed.PATCHES))
def test_a_patch_switched_off_takes_the_stock_path(name, tiny_bert, monkeypatch):
    assert speed.enabled(name)
    assert not STOCK[name](tiny_bert) or name == "malloc"  # on: the patched path (malloc: set once per process)
    monkeypatch.setenv(speed.SWITCH, f"other,{name}")
    assert not speed.enabled(name)
    assert STOCK[name](tiny_bert)


def test_all_switches_every_patch_off(monkeypatch):
    monkeypatch.setenv(speed.SWITCH, "all")
    assert not any(speed.enabled(n) for n in speed.PATCHES)


def test_a_patch_outside_its_tested_versions_falls_back_and_says_so_once(monkeypatch):
    monkeypatch.setitem(speed.PATCHES, "fused_clip", speed.Patch("fused_clip", "test", {"torch": "<1"}))
    speed._tested_versions.cache_clear()
    try:
        with pytest.warns(UserWarning, match="fused_clip.*tested with torch<1"):
            assert not speed.enabled("fused_clip")
        assert not speed.enabled("fused_clip")  # no second warning: the answer is remembered
    finally:
        speed._tested_versions.cache_clear()


def test_an_unknown_patch_name_is_a_mistake():
    with pytest.raises(KeyError, match="no speed patch named"):
        speed.enabled("turbo")


def test_the_lazy_network_gives_the_eager_networks_features(tiny_bert):
    lazy_enc, eager = Encoder.load(str(tiny_bert), lazy=True), Encoder.load(str(tiny_bert))
    assert isinstance(lazy_enc, lazy.LazyNetwork) and not lazy_enc.loaded
    tok = eager.tokenize(["good movie", "bad bad film"])
    np.testing.assert_allclose(lazy_enc.encode(tok)[(-1, lazy_enc.pooling)], eager.encode(tok)[(-1, eager.pooling)],
                               atol=1e-6)


def test_reused_validation_outputs_are_those_of_the_kept_weights():
    loop = SimpleNamespace(history=[{"step": 4}, {"step": 8}, {"step": 12}], kept_step=8)
    fp32 = SimpleNamespace(precision="fp32")
    assert kept_outputs(loop, ["at 4", "at 8", "at 12"], fp32) == {"validation": "at 8"}
    # a resumed run's history holds evaluations this process never saw; a bf16 loop's outputs are not fp32's
    assert kept_outputs(loop, ["at 8", "at 12"], fp32) == {}
    assert kept_outputs(loop, ["at 4", "at 8", "at 12"], SimpleNamespace(precision="bf16")) == {}


def test_a_run_reports_the_same_validation_scores_with_and_without_reuse(tiny_bert, sentiment_dir, tmp_path,
                                                                         monkeypatch):
    import enctune

    kw = dict(data=str(sentiment_dir), model=str(tiny_bert), strategy="full", epochs=2, lr=3e-3, batch_size=8,
              precision="fp32", patience=20)
    reused = enctune.train(out=str(tmp_path / "a"), **kw)
    monkeypatch.setenv(speed.SWITCH, "reuse_validation")
    recomputed = enctune.train(out=str(tmp_path / "b"), **kw)
    assert reused.metrics["validation"] == recomputed.metrics["validation"]
    assert reused.metrics["test"] == recomputed.metrics["test"]
