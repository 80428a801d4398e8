"""What the task tests share: settings that train a tiny encoder on a toy task in seconds, split files
written from a row generator, and the check that a reloaded run predicts exactly as the trained one."""

from __future__ import annotations

import json

import pytest

import enctune
from enctune.errors import UserError

from ..conftest import write_jsonl

# fp32: the thresholds below hold on every CPU; bf16 rounds differently on AVX-512 BF16 and on AMX (a tiny
# GPT-2 regression scored 0.594 test Spearman under bf16 on an EPYC, above 0.6 on a Xeon)
FULL = {"strategy": "full", "epochs": 10, "lr": 3e-3, "batch_size": 8, "patience": 50, "precision": "fp32"}


def splits(tmp_path, make, n=(160, 48, 48), **kw):
    d = tmp_path / "data"
    for name, size, seed in zip(("train", "validation", "test"), n, (1, 2, 3), strict=True):
        write_jsonl(d / f"{name}.jsonl", make(size, seed, **kw))
    return d


def roundtrip(run, out, texts, pairs=None):
    """Predictions from the in-memory model and from the reloaded folder agree exactly."""
    before = run.predictor.predict(texts, pairs)
    after = enctune.load(out).predict(texts, pairs)
    assert json.dumps(before, sort_keys=True) == json.dumps(after, sort_keys=True)
    return after


# ---- bad input per format, each a clear error naming the row ---------------------------------
def fails(tiny_bert_std, tmp_path, rows, match, name="train.jsonl", **kw):
    d = tmp_path / "bad"
    write_jsonl(d / name, rows)
    with pytest.raises(UserError, match=match):
        enctune.train(data=str(d / name), out=str(tmp_path / "run"), model=str(tiny_bert_std), **kw)
    assert not (tmp_path / "run").exists()
