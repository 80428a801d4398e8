"""Two CPU processes (gloo) through torchrun and accelerate launch: training agrees with one
process of the same global batch; predict and embed shard a file and write it once, in order."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import enctune
from enctune.distributed import assemble, gather_rows, shard

from .conftest import ROOT, make_rows, write_jsonl


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=str(ROOT / "src"))
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def torchrun(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "enctune", *args]
    return subprocess.run(cmd, env={**_env(), **(env or {})}, capture_output=True, text=True, timeout=600)


def accelerate_launch(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), "-m", "enctune", *args]
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)


def test_shard_and_gather_rows_cover_every_row_once():
    batch = list(range(10, 17))
    parts = [shard(batch, r, 3) for r in range(3)]
    assert sorted(sum(parts, [])) == batch and parts[0] == [10, 13, 16]
    assert shard([5], 1, 2) == [5]  # too few rows: a process takes one again rather than none
    out = gather_rows(5, lambda idx: np.stack([idx, idx * 2], 1))
    np.testing.assert_array_equal(out[:, 1], np.arange(5) * 2)
    # what two processes hand back (rows 0, 2, 4 and 1, 3), as arrays and as per-row lists
    pieces = [(np.array([0, 2, 4]), np.array([[0.0], [2.0], [4.0]])), (np.array([1, 3]), np.array([[1.0], [3.0]]))]
    np.testing.assert_array_equal(assemble(5, pieces)[:, 0], np.arange(5.0))
    ragged = [(np.array([0, 2]), [np.zeros((3, 2)), np.zeros((1, 2))]), (np.array([1]), [np.ones((2, 2))])]
    assert [r.shape for r in assemble(3, ragged)] == [(3, 2), (2, 2), (1, 2)]


def test_two_processes_train_like_one_with_the_same_global_batch(tiny_bert_no_dropout, tmp_path):
    d = tmp_path / "data"
    write_jsonl(d / "train.jsonl", make_rows(160, seed=1))
    write_jsonl(d / "validation.jsonl", make_rows(41, seed=2))  # odd: the shares differ in size
    write_jsonl(d / "test.jsonl", make_rows(40, seed=3))
    args = ["train", "--data", str(d), "--model", str(tiny_bert_no_dropout), "--strategy", "full", "--epochs",
            "2", "--batch-size", "8", "--lr", "3e-3", "--dropout", "0", "--seed", "5", "--json",
            "--precision", "fp32"]  # bf16 rounding differs with the rows a pass holds: compare exact arithmetic
    p = torchrun(*args, "--out", str(tmp_path / "two"))
    assert p.returncode == 0, p.stderr[-3000:]
    printed = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    assert len(printed) == 1  # only the main process prints
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = enctune.train(data=str(d), out=str(tmp_path / "one"), model=str(tiny_bert_no_dropout),
                            strategy="full", epochs=2, batch_size=8, lr=3e-3, dropout=0.0, seed=5,
                            precision="fp32").metrics
    finally:
        torch.set_num_threads(threads)
    assert two["costs"]["processes"] == 2 and one["costs"]["processes"] == 1
    for key in ("steps", "train_examples_seen", "epochs_run", "stopped_early"):
        assert two["costs"][key] == one["costs"][key], key
    # the same tokens were seen (each process counts its share; summed at the end)
    assert two["costs"]["tokens_seen"] == one["costs"]["tokens_seen"]
    # the same evaluations at the same steps, under the same learning-rate schedule
    assert [(h["step"], h["lr"]) for h in two["history"]] == [(h["step"], h["lr"]) for h in one["history"]]
    # same data, schedule and averaged gradients: only float summation order differs (seen: 3e-5 apart in
    # probability after 40 steps), so scores may differ by at most one validation example of 41
    np.testing.assert_allclose([h["score"] for h in two["history"]], [h["score"] for h in one["history"]],
                               atol=1.5 / 41)
    texts = [r["text"] for r in make_rows(30, seed=9)]
    np.testing.assert_allclose(enctune.load(tmp_path / "two").predict_proba(texts),
                               enctune.load(tmp_path / "one").predict_proba(texts), atol=5e-4)
    assert not list(tmp_path.glob(".two.tmp-*"))  # one writer, nothing left half-written


def test_two_processes_probe_shares_the_encoding_and_trains_like_one(tiny_bert_std, sentiment_dir, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setenv("ENCTUNE_CACHE", str(tmp_path / "cache"))
    # no early stopping: a float-level difference in the features could move the stopping point by one epoch.
    # tiny_bert_std: its frozen features separate the toy classes, so predictions are not coin flips that a
    # float-level difference could turn
    args = ["--data", str(sentiment_dir), "--model", str(tiny_bert_std), "--strategy", "probe", "--epochs", "20",
            "--batch-size", "16", "--seed", "5", "--patience", "100"]
    p = torchrun("train", *args, "--out", str(tmp_path / "two"), "--quiet", env={"ENCTUNE_CACHE": str(tmp_path / "cache")})
    assert p.returncode == 0, p.stderr[-3000:]
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert two["costs"]["cache_hits"] == 0 and two["costs"]["processes"] == 2
    monkeypatch.setenv("ENCTUNE_CACHE", str(tmp_path / "cache1"))
    one = enctune.train(data=str(sentiment_dir), out=str(tmp_path / "one"), model=str(tiny_bert_std), strategy="probe",
                        epochs=20, batch_size=16, seed=5, patience=100).metrics
    # the features the two processes encoded (each its share, gathered) are those one process computes
    two_files = sorted((tmp_path / "cache" / "features").glob("*.npy"))
    one_files = sorted((tmp_path / "cache1" / "features").glob("*.npy"))
    assert [f.name for f in two_files] == [f.name for f in one_files] and len(one_files) == 3
    for a, b in zip(two_files, one_files, strict=True):
        np.testing.assert_allclose(np.load(a), np.load(b), atol=1e-5)
    assert [h["step"] for h in two["history"]] == [h["step"] for h in one["history"]]
    assert abs(two["test"]["accuracy"] - one["test"]["accuracy"]) <= 1 / 40


@pytest.fixture(scope="module")
def trained(tiny_bert, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("dist_predict")
    data = write_jsonl(tmp / "train.jsonl", make_rows(60, seed=1))
    enctune.train(data=str(data), out=str(tmp / "run"), model=str(tiny_bert), strategy="probe", epochs=5)
    return tmp / "run"


def _ragged_input(path: Path, n: int = 101) -> list[str]:
    rows = make_rows(n, seed=4)
    texts = [" ".join([r["text"]] * (1 + i % 4)) for i, r in enumerate(rows)]  # lengths vary, order mixed
    write_jsonl(path, [{"text": t} for t in texts])
    return texts


def test_predict_over_two_processes_writes_one_file_in_input_order(trained, tmp_path):
    texts = _ragged_input(tmp_path / "in.jsonl")
    out = tmp_path / "preds.jsonl"
    p = accelerate_launch("predict", str(trained), "--input", str(tmp_path / "in.jsonl"), "--output", str(out))
    assert p.returncode == 0, p.stderr[-3000:]
    got = [json.loads(line) for line in out.read_text().splitlines()]
    want = enctune.load(trained).predict(texts)
    assert len(got) == len(texts) == len(want)
    assert [g["label"] for g in got] == [w["label"] for w in want]
    for g, w in zip(got, want, strict=True):
        for lab, prob in w["probabilities"].items():
            assert abs(g["probabilities"][lab] - prob) < 1e-5
    assert p.stderr.count("wrote 101 predictions") == 1


def test_embed_over_two_processes_writes_one_file_in_input_order(tiny_bert, tmp_path):
    texts = _ragged_input(tmp_path / "in.jsonl", 37)
    out = tmp_path / "vec.npy"
    p = torchrun("embed", "--model", str(tiny_bert), "--input", str(tmp_path / "in.jsonl"), "--output", str(out))
    assert p.returncode == 0, p.stderr[-3000:]
    np.testing.assert_allclose(np.load(out), enctune.embed(str(tiny_bert), texts), atol=1e-5)
