"""The ``lora`` strategy: adapters and head train, the base stays bit-identical; the model folder stores only
the adapters beside the source's files; reload, ``export --merge`` and ONNX export predict as the run did."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from safetensors.torch import load_file

import enctune
from enctune.cli import main
from enctune.encoders import Encoder
from enctune.model_folder import write_model_folder
from enctune.strategies.lora import LoraStrategy, target_modules

from ..conftest import make_rows, write_jsonl

# Under these a tiny random BERT learns the toy task with adapters in seconds (fp32: bf16 rounding moves a
# 40-row split of a 32-wide model by whole examples).
FAST = {"epochs": 8, "lr": 3e-3, "batch_size": 8, "patience": 20, "precision": "fp32"}
WIDTH, FFN, LAYERS, R = 32, 64, 2, 8


@pytest.fixture(scope="module")
def lora_run(tiny_bert_std, tmp_path_factory):
    """One LoRA run on the toy sentiment splits (as ``sentiment_dir`` writes them), shared by the tests."""
    root = tmp_path_factory.mktemp("lora")
    data = root / "data"
    write_jsonl(data / "train.jsonl", make_rows(120, seed=1))
    write_jsonl(data / "validation.jsonl", make_rows(40, seed=2))
    write_jsonl(data / "test.jsonl", make_rows(40, seed=3))
    run = enctune.train(data=str(data), out=str(root / "run"), model=str(tiny_bert_std), strategy="lora", **FAST)
    return root, run


def _texts(n=24, seed=9):
    texts = [r["text"] for r in make_rows(n, seed=seed)]
    texts[0] = " ".join(["good"] * 100)  # longer than max_length: truncated alike everywhere
    return texts


def test_lora_learns_and_only_adapters_and_head_train(lora_run, tiny_bert_std):
    root, run = lora_run
    m = run.metrics
    assert m["strategy"] == "lora" and m["test"]["accuracy"] >= 0.85  # far above the 0.5 of a constant guess
    # per layer: query, key, value, attention.output.dense (32 -> 32), intermediate.dense (32 -> 64) and
    # output.dense (64 -> 32), each with A (r, d_in) and B (d_out, r); the pooler is not adapted; head 32 x 2 + 2
    per_layer = 4 * R * (WIDTH + WIDTH) + 2 * R * (WIDTH + FFN)
    assert m["costs"]["trainable_params"] == LAYERS * per_layer + WIDTH * 2 + 2
    assert m["costs"]["total_params"] > 3 * m["costs"]["trainable_params"]

    peft_model = run.predictor.encoder.model
    adapters = {k: v for k, v in peft_model.named_parameters() if "lora_" in k}
    assert len(adapters) == LAYERS * 6 * 2
    assert all(float(v.detach().abs().sum()) > 0 for k, v in adapters.items() if "lora_B" in k)  # B moved off zero
    # every base weight is the source's, bit for bit (PEFT keeps an adapted layer's W as <layer>.base_layer)
    source = load_file(str(tiny_bert_std / "model.safetensors"))
    base = {k.replace(".base_layer.", "."): v for k, v in peft_model.get_base_model().state_dict().items()
            if "lora_" not in k}
    assert base.keys() == source.keys()
    for k, v in source.items():
        assert base[k].dtype == v.dtype and bool((base[k] == v).all()), k


def test_model_folder_holds_the_source_encoder_and_the_adapters(lora_run, tiny_bert_std):
    root, _ = lora_run
    model = root / "run" / "model"
    meta = json.loads((model / "enctune.json").read_text())
    assert meta["strategy"] == "lora" and meta["adapter"] == "adapter"
    assert sorted(p.name for p in (model / "adapter").iterdir()) == ["adapter_config.json",
                                                                      "adapter_model.safetensors"]
    assert (model / "encoder" / "model.safetensors").read_bytes() == (tiny_bert_std / "model.safetensors").read_bytes()
    assert not list(model.rglob("*.bin")) and not list(model.rglob("*.pt"))
    config = json.loads((model / "adapter" / "adapter_config.json").read_text())
    assert config["r"] == R and config["lora_alpha"] == 16 and "pooler.dense" not in config["target_modules"]
    assert all(k.count("lora_") == 1 for k in load_file(str(model / "adapter" / "adapter_model.safetensors")))


def test_reload_predicts_as_the_trained_model(lora_run):
    from peft import PeftModel

    root, run = lora_run
    texts = _texts()
    loaded = enctune.load(root / "run")
    assert isinstance(loaded.encoder.model, PeftModel)
    np.testing.assert_allclose(loaded.predict_proba(texts), run.predictor.predict_proba(texts), rtol=0, atol=1e-6)
    assert [p["label"] for p in loaded.predict(texts)] == [p["label"] for p in run.predictor.predict(texts)]
    # int8 quantises every linear layer: the adapters are folded into W first
    int8 = enctune.load(root / "run", precision="int8")
    assert not isinstance(int8.encoder.model, PeftModel) and len(int8.predict(texts)) == len(texts)


def test_base_saved_without_adapters_when_the_source_has_no_safetensors(lora_run, tiny_bert_std, tmp_path,
                                                                        monkeypatch):
    root, run = lora_run
    encoder = run.predictor.encoder
    monkeypatch.setattr(encoder, "source", str(tmp_path / "gone"))  # nothing to link: the base is serialised
    meta = json.loads((root / "run" / "model" / "enctune.json").read_text())
    write_model_folder(tmp_path / "model", encoder, run.predictor.model.head, meta, "card",
                       lambda enc, dst: LoraStrategy.write_encoder(enc, dst, True))
    saved = load_file(str(tmp_path / "model" / "encoder" / "model.safetensors"))
    source = load_file(str(tiny_bert_std / "model.safetensors"))
    assert saved.keys() == source.keys() and all(bool((saved[k] == v).all()) for k, v in source.items())
    texts = _texts(8)
    np.testing.assert_allclose(enctune.load(tmp_path / "model").predict_proba(texts),
                               run.predictor.predict_proba(texts), rtol=0, atol=1e-6)


def test_pickled_adapter_weights_are_refused(lora_run, tmp_path):
    root, _ = lora_run
    model = tmp_path / "model"
    shutil.copytree(root / "run" / "model", model)
    (model / "adapter" / "adapter_model.safetensors").unlink()
    (model / "adapter" / "adapter_model.bin").write_bytes(b"not read")
    with pytest.raises(enctune.UserError, match=r"adapter_model\.bin.*pickle"):
        enctune.load(model)
    assert main(["predict", str(model), "good film"]) == 2


def test_adapter_weights_that_do_not_fit_are_refused(lora_run, tmp_path):
    from safetensors.torch import save_file

    root, _ = lora_run
    model = tmp_path / "model"
    shutil.copytree(root / "run" / "model", model)
    f = model / "adapter" / "adapter_model.safetensors"
    weights = load_file(str(f))
    save_file({k: v for k, v in weights.items() if ".layer.1." not in k}, str(f))  # layer 1 would stay at B = 0
    with pytest.raises(enctune.UserError, match="does not fit adapter_config.json"):
        enctune.load(model)


def test_lora_targets_are_checked_and_chosen_per_architecture(tiny_bert, tiny_gpt2, sentiment_dir, tmp_path):
    import torch
    from transformers import LlamaConfig, LlamaModel

    def leaves(model, n, targets=None):
        return sorted({name.rsplit(".", 1)[-1] for name in target_modules(model, n, targets)})

    bert = Encoder.load(str(tiny_bert)).model
    assert leaves(bert, 2) == ["dense", "key", "query", "value"]
    assert not [n for n in target_modules(bert, 2, None) if "pooler" in n]
    assert target_modules(bert, 2, "query, attention.output.dense") == [
        f"encoder.layer.{i}.{m}" for i in (0, 1) for m in ("attention.self.query", "attention.output.dense")]
    assert leaves(Encoder.load(str(tiny_gpt2)).model, 2) == ["c_attn", "c_fc", "c_proj"]
    torch.manual_seed(0)
    llama = LlamaModel(LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                   num_attention_heads=2, num_key_value_heads=2))
    assert leaves(llama, 2) == sorted(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])

    out = tmp_path / "run"
    with pytest.raises(enctune.UserError, match="'nope'.*available: query, key, value, dense"):
        enctune.train(data=str(sentiment_dir), out=str(out), model=str(tiny_bert), strategy="lora",
                      lora_targets="query,nope", epochs=1)
    assert not out.exists()
    assert main(["train", "--data", str(sentiment_dir), "--out", str(out), "--model", str(tiny_bert),
                 "--strategy", "lora", "--lora-targets", "attn", "--epochs", "1", "--quiet"]) == 2


def test_gpt2_lora_run_round_trip(tiny_gpt2, sentiment_dir, tmp_path):
    out = tmp_path / "run"
    run = enctune.train(data=str(sentiment_dir), out=str(out), model=str(tiny_gpt2), strategy="lora",
                        lora_targets="c_attn", lora_r=4, epochs=1, precision="fp32")
    config = json.loads((out / "model" / "adapter" / "adapter_config.json").read_text())
    # GPT-2's Conv1D stores W as (d_in, d_out): the adapters know to transpose
    assert config["fan_in_fan_out"] is True
    assert sorted(config["target_modules"]) == ["h.0.attn.c_attn", "h.1.attn.c_attn"]
    assert run.metrics["costs"]["trainable_params"] == 2 * 4 * (32 + 3 * 32) + 32 * 2 + 2
    texts = _texts(12)
    np.testing.assert_allclose(enctune.load(out).predict_proba(texts), run.predictor.predict_proba(texts),
                               rtol=0, atol=1e-6)


def test_export_merge_writes_a_plain_folder_that_predicts_the_same(lora_run, tmp_path, capsys):
    root, run = lora_run
    out = tmp_path / "merged"
    assert main(["export", str(root / "run"), "--merge", "--out", str(out), "--json"]) == 0
    check = json.loads(capsys.readouterr().out)["check"]["fp32"]
    assert check["n"] == 40 and check["agreement"] == 1.0 and check["max_probability_difference"] < 1e-4
    assert not (out / "adapter").exists()
    meta = json.loads((out / "enctune.json").read_text())
    assert "adapter" not in meta and meta["adapter_merged"] is True and meta["strategy"] == "lora"
    weights = load_file(str(out / "encoder" / "model.safetensors"))
    assert not [k for k in weights if "lora_" in k or "base_layer" in k]
    merged = enctune.load(out)
    assert type(merged.encoder.model).__name__ == "BertModel"
    texts = _texts()
    np.testing.assert_allclose(merged.predict_proba(texts), run.predictor.predict_proba(texts), rtol=0, atol=1e-4)
    assert [p["label"] for p in merged.predict(texts)] == [p["label"] for p in run.predictor.predict(texts)]
    # a folder without adapters has nothing to merge; --merge is not an ONNX export
    assert main(["export", str(out), "--merge", "--out", str(tmp_path / "again"), "--quiet"]) == 2
    assert main(["export", str(root / "run"), "--merge", "--quantize", "int8", "--out", str(tmp_path / "x")]) == 2
    assert main(["export", str(root / "run"), "--merge", "--out", str(root / "run" / "model")]) == 2
    assert not (tmp_path / "again").exists() and not (tmp_path / "x").exists()


def test_onnx_export_of_a_lora_run_agrees_with_pytorch(lora_run, tmp_path):
    from enctune.serve.onnx_predictor import OnnxPredictor

    root, run = lora_run
    onnx_dir = tmp_path / "onnx"
    assert main(["export", str(root / "run"), "--out", str(onnx_dir), "--quiet"]) == 0
    meta = json.loads((onnx_dir / "enctune-onnx.json").read_text())
    assert meta["strategy"] == "lora" and meta["check"]["fp32"]["agreement"] == 1.0
    assert meta["check"]["fp32"]["max_probability_difference"] < 1e-4
    onnx_pred = enctune.load(onnx_dir, precision="fp32")
    assert isinstance(onnx_pred, OnnxPredictor)
    texts = _texts()
    np.testing.assert_allclose(onnx_pred.predict_proba(texts), run.predictor.predict_proba(texts), atol=1e-5)
    assert [p["label"] for p in onnx_pred.predict(texts)] == [p["label"] for p in run.predictor.predict(texts)]
    assert (root / "run" / "model" / "adapter").is_dir()  # the run folder is left as it was


def test_a_lora_run_is_refused_as_a_starting_encoder(lora_run, sentiment_dir, tmp_path):
    root, _ = lora_run
    with pytest.raises(enctune.UserError, match="--merge"):
        enctune.train(data=str(sentiment_dir), out=str(tmp_path / "again"), model=str(root / "run"), strategy="probe")
    assert not (tmp_path / "again").exists()
