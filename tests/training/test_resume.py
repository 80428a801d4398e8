"""Checkpoints and --resume: a run killed with SIGKILL at a random step and resumed ends exactly
where an uninterrupted run ends (bit-identical on CPU with the same seed and thread count)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import enctune
from enctune.cli import main

from ..conftest import ROOT, make_rows, write_jsonl

FULL = ["--strategy", "full", "--epochs", "2", "--batch-size", "8", "--lr", "3e-3", "--checkpoint-every", "3"]
FAST = {"full": {"epochs": 2, "batch_size": 8, "lr": 3e-3, "checkpoint_every": 3},
        "probe": {"epochs": 30, "batch_size": 8, "lr": 3e-2, "checkpoint_every": 7, "patience": 100}}


@pytest.fixture
def one_thread():
    """Bit-identical runs need the same thread count in this process and in the child processes."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(ROOT / "src"))
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        env.pop(k, None)
    return env


def _args(tiny, data, out):
    return [sys.executable, "-m", "enctune", "train", "--data", str(data), "--out", str(out), "--model", str(tiny),
            "--seed", "7", "--quiet", *FULL]


def _steps_written(folder: Path) -> int:
    steps = [int(p.name.split("-")[1]) for p in folder.glob("step-*")] if folder.is_dir() else []
    return max(steps, default=-1)


def _assert_same_run(got: dict, ref: dict, info: str) -> None:
    assert got["history"] == ref["history"], info
    assert got["validation"] == ref["validation"] and got["test"] == ref["test"], info
    for key in ("steps", "train_examples_seen", "tokens_seen", "epochs_run", "stopped_early"):
        assert got["costs"][key] == ref["costs"][key], (key, info)


@pytest.fixture
def long_data(tmp_path) -> Path:
    d = tmp_path / "data"
    write_jsonl(d / "train.jsonl", make_rows(400, seed=1))
    write_jsonl(d / "validation.jsonl", make_rows(40, seed=2))
    write_jsonl(d / "test.jsonl", make_rows(40, seed=3))
    return d


def test_sigkill_at_a_random_step_then_resume_matches_uninterrupted(tiny_bert, long_data, tmp_path, one_thread):
    ref_out, out = tmp_path / "ref", tmp_path / "run"
    assert main(_args(tiny_bert, long_data, ref_out)[3:]) == 0  # the same command, in this process
    ref = json.loads((ref_out / "metrics.json").read_text())
    total = ref["costs"]["steps"]
    assert not (ref_out / "checkpoints").exists()  # a finished run leaves no checkpoints behind

    kill_after = random.SystemRandom().randrange(3, total * 2 // 3)  # shown by pytest on failure
    proc = subprocess.Popen(_args(tiny_bert, long_data, out), env=_env())
    try:
        deadline = time.monotonic() + 300
        while _steps_written(out / "checkpoints") < kill_after:
            assert proc.poll() is None, f"the run ended before step {kill_after} (of {total})"
            assert time.monotonic() < deadline
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    killed_at = _steps_written(out / "checkpoints")
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "metrics.json").exists() and not (out / "model").exists()

    subprocess.run(_args(tiny_bert, long_data, out) + ["--resume"], env=_env(), check=True, timeout=300)
    got = json.loads((out / "metrics.json").read_text())
    info = f"killed after checkpoint step {killed_at} (asked {kill_after}) of {total}"
    assert got["costs"]["resumed_at_step"] == killed_at, info
    _assert_same_run(got, ref, info)
    texts = [r["text"] for r in make_rows(20, seed=11)]
    np.testing.assert_array_equal(enctune.load(out).predict_proba(texts), enctune.load(ref_out).predict_proba(texts))
    assert not (out / "checkpoints").exists()


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("strategy", ["full", "probe"])
def test_interrupted_after_a_random_checkpoint_resumes_exactly(strategy, tiny_bert, sentiment_dir, tmp_path,
                                                              monkeypatch):
    from enctune.training import checkpoint as ck

    kw = {"data": str(sentiment_dir), "model": str(tiny_bert), "strategy": strategy, "seed": 3, **FAST[strategy]}
    ref = enctune.train(out=str(tmp_path / "ref"), **kw)
    saves = ref.metrics["costs"]["steps"] // kw["checkpoint_every"]
    stop_after = random.SystemRandom().randrange(1, saves)
    real, count = ck.Checkpointer.save, [0]

    def save_then_die(self, *a, **k):
        real(self, *a, **k)
        count[0] += 1
        if count[0] == stop_after:
            raise Interrupted

    with monkeypatch.context() as m:
        m.setattr(ck.Checkpointer, "save", save_then_die)
        with pytest.raises(Interrupted):
            enctune.train(out=str(tmp_path / "run"), **kw)
    run = enctune.train(out=str(tmp_path / "run"), resume=True, **kw)
    info = f"stopped after checkpoint {stop_after} of {saves}"
    assert run.metrics["costs"]["resumed_at_step"] > 0, info
    _assert_same_run(run.metrics, ref.metrics, info)


def test_resume_refuses_other_settings_and_a_missing_checkpoint(tiny_bert, sentiment_dir, tmp_path, capsys,
                                                                monkeypatch):
    import enctune.record

    out = tmp_path / "run"
    base = ["train", "--data", str(sentiment_dir), "--out", str(out), "--model", str(tiny_bert), "--strategy",
            "full", "--batch-size", "8", "--quiet"]
    assert main(base + ["--epochs", "1", "--resume"]) == 2
    assert "no checkpoint" in capsys.readouterr().err

    def crash(*a, **k):  # the run dies after training, before its folder is written
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(enctune.record, "write", crash)
        assert main(base + ["--epochs", "2", "--checkpoint-every", "4"]) == 130
    assert list((out / "checkpoints").glob("step-*")) and not (out / "metrics.json").exists()
    assert main(base + ["--epochs", "1", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "epochs: 2 then, 1 now" in err
    # the same settings: the run resumes at its last checkpoint (the end) and writes its folder
    assert main(base + ["--epochs", "2", "--resume"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["costs"]["resumed_at_step"] == metrics["costs"]["steps"] > 0


def test_checkpoint_is_replaced_atomically_and_only_the_newest_kept(tiny_bert, sentiment_dir, tmp_path,
                                                                    monkeypatch):
    from enctune.training import checkpoint as ck

    saved = []
    real = ck.Checkpointer.save

    def spy(self, *a, **k):
        real(self, *a, **k)
        saved.append(sorted(p.name for p in self.folder.iterdir()))

    monkeypatch.setattr(ck.Checkpointer, "save", spy)
    enctune.train(data=str(sentiment_dir), out=str(tmp_path / "run"), model=str(tiny_bert), strategy="full",
                  epochs=2, batch_size=16, checkpoint_every=3)
    assert saved and all(len(names) == 1 and names[0].startswith("step-") for names in saved)


def _crashed_run(base, monkeypatch) -> None:
    """A run that checkpoints and dies after training, before its folder is written."""
    import enctune.record

    def crash(*a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(enctune.record, "write", crash)
        assert main(base + ["--checkpoint-every", "4"]) == 130


def test_resume_takes_the_same_file_named_another_way_and_refuses_changed_data(tiny_bert, tmp_path, capsys,
                                                                                monkeypatch):
    data = write_jsonl(tmp_path / "d" / "train.jsonl", make_rows(60, seed=1))
    monkeypatch.chdir(tmp_path)
    common = ["--model", str(tiny_bert), "--strategy", "full", "--batch-size", "8", "--epochs", "2", "--quiet"]
    _crashed_run(["train", "--data", "d/train.jsonl", "--out", "run", *common], monkeypatch)
    # the same file, named by its absolute path: the same settings
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), *common, "--resume"]) == 0
    _crashed_run(["train", "--data", str(data), "--out", "run2", *common], monkeypatch)
    write_jsonl(data, make_rows(60, seed=2))  # other contents under the same name
    assert main(["train", "--data", str(data), "--out", "run2", *common, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "data changed" in err and "Traceback" not in err


@pytest.mark.parametrize("damage", ["no settings", "rng", "not an object", "weights"])
def test_a_damaged_checkpoint_state_is_a_clear_error(damage, tiny_bert, sentiment_dir, tmp_path, capsys,
                                                     monkeypatch):
    out = tmp_path / "run"
    base = ["train", "--data", str(sentiment_dir), "--out", str(out), "--model", str(tiny_bert), "--strategy",
            "full", "--batch-size", "8", "--epochs", "2", "--quiet"]
    _crashed_run(base, monkeypatch)
    (ckpt,) = (out / "checkpoints").glob("step-*")
    state = json.loads((ckpt / "state.json").read_text())
    if damage == "no settings":
        del state["settings"]
    elif damage == "rng":
        state["rng"][0]["torch"] = state["rng"][0]["torch"][:10]
        state["rng"][0]["python"] = ["x"]
    elif damage == "not an object":
        state = [1, 2, 3]
    if damage == "weights":
        from safetensors.torch import load_file, save_file

        w = load_file(str(ckpt / "trainable.safetensors"))
        k = next(iter(w))
        save_file({**w, k: w[k][:1]}, str(ckpt / "trainable.safetensors"))
    else:
        (ckpt / "state.json").write_text(json.dumps(state))
    assert main(base + ["--resume"]) == 2
    err = capsys.readouterr().err
    assert "unreadable checkpoint" in err and "Traceback" not in err
