"""Nothing lost, nothing half-written: damaged weights, pickle files, full disks and permission
errors; the memory guard; the padded-token cap; gradient checkpointing."""

from __future__ import annotations

import errno
import shutil

import numpy as np
import pytest
import torch

import enctune
from enctune.cli import main
from enctune.encoders import Encoder
from enctune.errors import UserError
from enctune.training import memory
from enctune.training.batching import split_by_tokens

from .conftest import make_rows, write_jsonl


@pytest.fixture(scope="module")
def run_dir(tiny_bert, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("survive")
    data = write_jsonl(tmp / "train.jsonl", make_rows(40, seed=1))
    enctune.train(data=str(data), out=str(tmp / "run"), model=str(tiny_bert), strategy="probe", epochs=3)
    return tmp / "run"


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_damaged_encoder_weights_name_the_file(damage, run_dir, tmp_path, capsys):
    run = _copy(run_dir, tmp_path / "run")
    weights = run / "model" / "encoder" / "model.safetensors"
    if damage == "missing":
        weights.unlink()
    else:
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(UserError, match="model.safetensors"):
        enctune.load(run)
    assert main(["predict", str(run), "some text"]) == 2
    err = capsys.readouterr().err
    assert "model.safetensors" in err and "Traceback" not in err


def test_truncated_head_names_the_file(run_dir, tmp_path):
    run = _copy(run_dir, tmp_path / "run")
    head = run / "model" / "head.safetensors"
    head.write_bytes(head.read_bytes()[:40])
    with pytest.raises(UserError, match="head.safetensors"):
        enctune.load(run)


def test_encoder_folder_with_pickle_files_is_refused_unless_allowed(tiny_bert, tmp_path, capsys):
    folder = _copy(tiny_bert, tmp_path / "enc")
    torch.save({"x": torch.zeros(1)}, folder / "training_args.bin")
    with pytest.raises(UserError, match=r"training_args\.bin.*--allow-pickle"):
        Encoder.load(str(folder))
    Encoder.load(str(folder), allow_pickle=True)  # the user's choice; the safetensors weights still load
    data = write_jsonl(tmp_path / "train.jsonl", make_rows(20))
    assert main(["train", "--data", str(data), "--model", str(folder), "--out", str(tmp_path / "run")]) == 2
    assert "pickle" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_pickle_only_weights_load_with_allow_pickle(tiny_bert, tmp_path):
    from safetensors.torch import load_file

    folder = _copy(tiny_bert, tmp_path / "enc")
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    assert (folder / "pytorch_model.bin").is_file() and not list(folder.glob("*.safetensors"))
    with pytest.raises(UserError, match="pytorch_model.bin"):
        Encoder.load(str(folder))
    enc = Encoder.load(str(folder), allow_pickle=True)
    ref = Encoder.load(str(tiny_bert))
    tok = ref.tokenize(["good film"])
    np.testing.assert_array_equal(enc.encode(tok)[(-1, enc.pooling)], ref.encode(tok)[(-1, ref.pooling)])


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES])
def test_disk_full_or_permission_denied_is_a_clear_error_and_leaves_nothing(code, tiny_bert, tmp_path, capsys,
                                                                           monkeypatch):
    from enctune import atomic

    data = write_jsonl(tmp_path / "train.jsonl", make_rows(30))

    def fail(src, dst):  # the disk fills up (or the folder turns read-only) just as the run is written
        raise OSError(code, "simulated", str(dst))

    monkeypatch.setattr(atomic, "replace_folder", fail)
    out = tmp_path / "runs" / "r"
    assert main(["train", "--data", str(data), "--model", str(tiny_bert), "--out", str(out), "--strategy",
                 "probe", "--epochs", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert ("no space left" if code == errno.ENOSPC else "permission denied") in err and "Traceback" not in err
    assert not out.exists() and list((tmp_path / "runs").iterdir()) == []  # no temporary folder left


def test_predict_output_on_a_full_disk(run_dir, tmp_path, capsys, monkeypatch):
    import enctune.atomic

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(enctune.atomic.os, "replace", full)
    out = tmp_path / "preds.jsonl"
    assert main(["predict", str(run_dir), "good film", "--output", str(out)]) == 2
    assert "no space left" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_memory_guard_fails_early_with_advice(tiny_bert, tmp_path, monkeypatch, capsys):
    data = write_jsonl(tmp_path / "train.jsonl", make_rows(30))
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 2**20)  # 1 MiB left
    assert main(["train", "--data", str(data), "--model", str(tiny_bert), "--out", str(tmp_path / "run"),
                 "--strategy", "full"]) == 2
    err = capsys.readouterr().err
    assert "GiB" in err and "--batch-size" in err and "--gradient-checkpointing" in err
    assert not (tmp_path / "run").exists()


def test_memory_estimate_shrinks_with_the_token_cap_and_checkpointing(monkeypatch):
    shape = memory.Shape(total_params=110_000_000, trainable_params=86_000_000, hidden=768, layers=12, heads=12)
    base = memory.estimate_bytes(shape, 32, 512)
    assert base > 8 * 2**30  # BERT-base, 32 x 512 tokens, fp32: well past 8 GiB
    assert memory.estimate_bytes(shape, 32, 512, gradient_checkpointing=True) < base / 2
    assert memory.estimate_bytes(shape, 4, 512) < base / 4
    assert memory.available_bytes() > 0  # read from /proc/meminfo here
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 4 * 2**30)
    with pytest.raises(UserError, match="--max-tokens-per-batch"):
        memory.check_fits(shape, 32, 512, "cpu", False, None)
    memory.check_fits(shape, 32, 512, "cpu", True, 1024)  # two rows per pass, checkpointed: fits in 4 GiB


def test_split_by_tokens_keeps_rows_and_trims_padding():
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]])
    batch = {"input_ids": torch.arange(24).view(4, 6) * mask, "attention_mask": mask,
             "labels": torch.tensor([0, 1, 0, 1])}
    pieces = split_by_tokens(batch, 8)
    assert [p["input_ids"].shape for p in pieces] == [(1, 6), (2, 4), (1, 1)]
    assert torch.cat([p["labels"] for p in pieces]).tolist() == [0, 1, 0, 1]
    assert sum(int(p["input_ids"].sum()) for p in pieces) == int(batch["input_ids"].sum())  # no token lost
    assert split_by_tokens(batch, None) == [batch] and split_by_tokens(batch, 24) == [batch]
    left = {"attention_mask": mask.flip(1), "labels": batch["labels"]}  # left padding trims from the left
    pieces = split_by_tokens(left, 8)
    assert [p["attention_mask"].shape[1] for p in pieces] == [6, 4, 1]
    assert sum(int(p["attention_mask"].sum()) for p in pieces) == int(mask.sum())


def test_split_by_tokens_trims_each_side_of_a_pair_by_its_own_mask():
    a = torch.tensor([[1, 1, 0], [1, 1, 0], [1, 0, 0]])  # first texts: at most 2 tokens
    b = torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 0]])  # second texts: up to 3, same padded width
    batch = {"input_ids": a * 5, "attention_mask": a, "input_ids_b": b * 7, "attention_mask_b": b,
             "labels": torch.tensor([0, 1, 1])}
    pieces = split_by_tokens(batch, 6)
    assert sum(int(p["attention_mask_b"].sum()) for p in pieces) == int(b.sum())  # no second-text token cut
    assert sum(int(p["attention_mask"].sum()) for p in pieces) == int(a.sum())
    for p in pieces:
        assert p["input_ids_b"].shape == p["attention_mask_b"].shape
        assert p["attention_mask_b"][:, -1].any()  # trimmed to its own longest row, not the first side's
    # a third text (a retrieval row's hard negative) is cut the same way, by its own mask
    c = torch.tensor([[1, 0, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]])
    pieces = split_by_tokens({**batch, "input_ids_c": c * 3, "attention_mask_c": c}, 8)
    assert len(pieces) > 1
    assert sum(int(p["attention_mask_c"].sum()) for p in pieces) == int(c.sum())
    for p in pieces:
        assert p["input_ids_c"].shape == p["attention_mask_c"].shape and p["attention_mask_c"][:, -1].any()


def test_token_cap_and_gradient_checkpointing_train_the_same_model(tiny_bert_no_dropout, sentiment_dir, tmp_path):
    kw = {"data": str(sentiment_dir), "model": str(tiny_bert_no_dropout), "strategy": "full", "epochs": 1, "batch_size": 16,
          "lr": 3e-3, "dropout": 0.0, "seed": 1, "precision": "fp32"}  # bf16 rounding depends on the pass
    ref = enctune.train(out=str(tmp_path / "ref"), **kw)
    capped = enctune.train(out=str(tmp_path / "capped"), max_tokens_per_batch=40, **kw)
    ckpt = enctune.train(out=str(tmp_path / "ckpt"), gradient_checkpointing=True, **kw)
    texts = [r["text"] for r in make_rows(20, seed=9)]
    p = ref.predictor.predict_proba(texts)
    # the same steps on the same rows and, without dropout, the same gradients up to float summation order
    for other in (capped, ckpt):
        assert other.metrics["costs"]["steps"] == ref.metrics["costs"]["steps"]
        assert other.metrics["costs"]["train_examples_seen"] == ref.metrics["costs"]["train_examples_seen"]
    np.testing.assert_allclose(ckpt.predictor.predict_proba(texts), p, atol=1e-4)
    np.testing.assert_allclose(capped.predictor.predict_proba(texts), p, atol=1e-4)
