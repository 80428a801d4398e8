"""``enctune export``: ONNX folders that onnxruntime runs without torch, checked against PyTorch."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import httpx
import numpy as np
import pytest

import enctune
from enctune.cli import main
from enctune.serve.onnx_predictor import OnnxPredictor
from enctune.serve.server import build_app, load_models
from enctune.tasks.classify import ClassifyTask

from .conftest import ROOT, make_rows, write_jsonl
from .serve_helpers import running_server, train_tiny


@pytest.fixture(scope="module")
def exported(tiny_bert, tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    data = root / "data"
    write_jsonl(data / "train.jsonl", make_rows(120, seed=1))
    write_jsonl(data / "validation.jsonl", make_rows(60, seed=2))
    train_tiny(tiny_bert, data, root / "run")
    assert main(["export", str(root / "run"), "--out", str(root / "onnx"), "--quantize", "int8", "--quiet"]) == 0
    return root


def _texts(n=30, seed=21):
    rows = make_rows(n, seed=seed)
    texts = [r["text"] for r in rows]
    texts[0] = " ".join(["good"] * 100)  # longer than max_length 64: truncated the same way
    texts[1] = "zzz unknown words"
    return texts


def test_export_writes_a_checked_folder(exported):
    onnx_dir = exported / "onnx"
    names = {p.name for p in onnx_dir.iterdir()}
    assert {"model.onnx", "model.int8.onnx", "tokenizer.json", "enctune-onnx.json", "metrics.json"} <= names
    meta = json.loads((onnx_dir / "enctune-onnx.json").read_text())
    assert meta["labels"] == ["negative", "positive"] and meta["task"] == "classify"
    assert meta["default_precision"] == "int8" and meta["fused"] is True  # tiny BERT: attention fused
    assert meta["check"]["fp32"]["n"] == 60  # the run's validation file
    assert meta["check"]["fp32"]["agreement"] == 1.0 and meta["check"]["fp32"]["max_probability_difference"] < 1e-4
    assert 0.0 <= meta["check"]["int8"]["max_probability_difference"] <= 1.0
    assert not [p for p in exported.iterdir() if p.name.startswith(".onnx.tmp")]


def test_onnx_predictions_match_pytorch(exported):
    texts = _texts()
    torch_pred = enctune.load(exported / "run")
    onnx_pred = enctune.load(exported / "onnx", precision="fp32")
    assert isinstance(onnx_pred, OnnxPredictor) and onnx_pred.precision == "fp32"
    np.testing.assert_allclose(onnx_pred.predict_proba(texts), torch_pred.predict_proba(texts), atol=1e-5)
    a, b = onnx_pred.predict(texts), torch_pred.predict(texts)
    assert [x["label"] for x in a] == [x["label"] for x in b] and a[0].keys() == b[0].keys()
    int8 = enctune.load(exported / "onnx")  # the folder's default: int8
    assert int8.precision == "int8" and len(int8.predict(texts)) == len(texts)
    assert onnx_pred.predict([]) == []


def test_onnx_tokenization_matches_the_encoder(exported):
    torch_pred = enctune.load(exported / "run")
    onnx_pred = enctune.load(exported / "onnx", precision="fp32")
    texts = _texts()
    pairs = texts[::-1]
    for p in (None, pairs):
        ref = torch_pred.encoder.tokenize(texts, p)
        ids, types = onnx_pred.tokenize(texts, p)
        assert ids == ref.input_ids
        assert types == ref.token_type_ids


@pytest.mark.parametrize("labels, label_type", [(["neg", "pos", "neutral"], "str"), (["0", "1", "7"], "int")])
def test_the_onnx_path_decodes_with_the_tasks_own_decoding(labels, label_type, tmp_path):
    """The ONNX predictor rebuilds the task from enctune-onnx.json and decodes with it: the same answers."""
    from enctune.tasks import TASKS

    logits = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    task = ClassifyTask(labels, label_type)
    rebuilt = TASKS[task.name].from_config(json.loads(json.dumps(task.config())))
    assert rebuilt.decode(logits) == task.decode(logits)


def test_onnx_folder_needs_no_torch(exported):
    """enctune.load, predict and the HTTP app on an ONNX folder, in a fresh interpreter: torch stays out."""
    code = f"""
import sys
import enctune
m = enctune.load({str(exported / 'onnx')!r})
assert m.predict(["good great film"])[0]["label"] == "positive", m.predict(["good great film"])
from enctune.serve.server import build_app, load_models
from enctune.cli import main
import uvicorn
uvicorn.run = lambda *a, **k: None  # the serve command up to the point of binding
assert main(["serve", {str(exported / 'onnx')!r}, "--quiet"]) == 0
bad = [k for k in ("torch", "transformers") if k in sys.modules]
assert not bad, bad
print("ok")
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr


def test_serve_an_onnx_folder_beside_a_pytorch_one(exported):
    models = load_models([f"torch={exported / 'run'}", f"onnx={exported / 'onnx'}"], precision=None)
    texts = _texts(12, seed=5)
    with running_server(build_app(models)) as url:
        a = httpx.post(f"{url}/models/torch/predict", json={"texts": texts}).json()
        b = httpx.post(f"{url}/models/onnx/predict", json={"texts": texts})
        assert b.status_code == 200, b.text
        info = httpx.get(f"{url}/models/onnx/info").json()
    assert info["runtime"] == "onnxruntime" and info["precision"] == "int8"
    assert info["metrics"]["validation"]["accuracy"] > 0.5
    assert len(b.json()) == len(a) and b.json()[0].keys() == a[0].keys()


def test_export_of_a_pair_model(tiny_bert, tmp_path):
    rng = random.Random(0)
    second = make_rows(100, seed=5)
    rng.shuffle(second)
    rows = [{"text": a["text"], "text_pair": b["text"], "label": "same" if a["label"] == b["label"] else "diff"}
            for a, b in zip(make_rows(100, seed=4), second, strict=True)]
    train_tiny(tiny_bert, write_jsonl(tmp_path / "pairs.jsonl", rows), tmp_path / "run", epochs=2)
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "onnx"), "--quiet"]) == 0
    texts, pairs = [r["text"] for r in rows[:10]], [r["text_pair"] for r in rows[:10]]
    onnx_pred = enctune.load(tmp_path / "onnx")
    np.testing.assert_allclose(onnx_pred.predict_proba(texts, pairs),
                               enctune.load(tmp_path / "run").predict_proba(texts, pairs), atol=1e-5)
    with pytest.raises(enctune.UserError, match="text pairs"):
        onnx_pred.predict(texts)


def test_export_of_a_causal_encoder_without_fusion(tiny_gpt2, tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", make_rows(60, seed=3))
    train_tiny(tiny_gpt2, data, tmp_path / "run", epochs=2)
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "onnx"), "--quiet"]) == 0
    meta = json.loads((tmp_path / "onnx" / "enctune-onnx.json").read_text())
    assert meta["fused"] is False and meta["check"]["fp32"]["agreement"] == 1.0
    texts = _texts(10)
    np.testing.assert_allclose(enctune.load(tmp_path / "onnx").predict_proba(texts),
                               enctune.load(tmp_path / "run").predict_proba(texts), atol=1e-5)


def test_export_errors_exit_2_and_write_nothing(exported, tmp_path, capsys):
    run = str(exported / "run")
    assert main(["export", run, "--out", str(tmp_path / "x"), "--format", "tflite"]) == 2
    assert "--format tflite" in capsys.readouterr().err
    assert main(["export", run, "--out", str(tmp_path / "x"), "--quantize", "int4"]) == 2
    assert "--quantize int4" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    assert main(["export", run, "--out", str(tmp_path / "busy")]) == 2
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"
    fp32_only = _fp32_only(exported, tmp_path)
    with pytest.raises(enctune.UserError, match="has no int8 model"):
        enctune.load(fp32_only, precision="int8")
    with pytest.raises(enctune.UserError, match="precision 'bf16'"):
        enctune.load(fp32_only, precision="bf16")
    with pytest.raises(enctune.UserError, match="does not evaluate"):
        enctune.evaluate(exported / "onnx", exported / "data" / "validation.jsonl")


def _fp32_only(exported, tmp_path):
    out = tmp_path / "fp32only"
    assert main(["export", str(exported / "run"), "--out", str(out), "--quiet", "--max-check", "5"]) == 0
    return out


def test_int8_rescores_unsure_texts_with_the_fp32_model(exported):
    texts = _texts()
    folder = exported / "onnx"
    fp32 = OnnxPredictor.load(folder, precision="fp32").logits(texts)
    raw = OnnxPredictor.load(folder, precision="int8-raw")
    assert raw.refine is None
    raw_logits = raw.logits(texts)
    everything = OnnxPredictor.load(folder, precision="int8")
    everything.refine_below = 1.01  # every text is unsure: all answers come from fp32
    np.testing.assert_allclose(everything.logits(texts), fp32, atol=1e-6)
    assert everything.refined == len(texts)
    nothing = OnnxPredictor.load(folder, precision="int8")
    nothing.refine_below = 0.0  # nobody is unsure: the raw int8 answers
    np.testing.assert_array_equal(nothing.logits(texts), raw_logits)
    assert nothing.refined == 0
    meta = json.loads((folder / "enctune-onnx.json").read_text())
    assert meta["refine_below"] == 0.6 and {"fp32", "int8", "int8-raw"} <= set(meta["check"])


def test_export_of_a_hugging_face_classifier_folder(tiny_bert, tmp_path):
    """The bench's predict row exports a plain ...ForSequenceClassification folder."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    cfg = BertConfig.from_pretrained(tiny_bert, num_labels=2, id2label={0: "neg", 1: "pos"},
                                     label2id={"neg": 0, "pos": 1}, architectures=["BertForSequenceClassification"])
    torch.manual_seed(1)
    hf = tmp_path / "hf"
    BertForSequenceClassification(cfg).save_pretrained(hf)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(hf)
    data = write_jsonl(tmp_path / "check.jsonl", make_rows(30, seed=8))
    assert main(["export", str(hf), "--out", str(tmp_path / "onnx"), "--check-data", str(data), "--quiet"]) == 0
    meta = json.loads((tmp_path / "onnx" / "enctune-onnx.json").read_text())
    assert meta["labels"] == ["neg", "pos"] and meta["check"]["fp32"]["n"] == 30
    texts = _texts(10)
    np.testing.assert_allclose(enctune.load(tmp_path / "onnx").predict_proba(texts),
                               enctune.load(hf).predict_proba(texts), atol=1e-5)
