"""bench/gpu_check.sh's dry run: every step of the GPU check runs on the CPU, so the script cannot rot
while no GPU is at hand."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.integration
def test_gpu_check_dry_run_runs_every_step(tmp_path):
    out = tmp_path / "check.json"
    p = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--dry-run", "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    rows = {r["step"]: r for r in json.loads(out.read_text())["rows"]}
    assert list(rows) == ["environment", "bf16_fused_adamw", "sdpa", "enctune_full", "trainer_best", "predict",
                          "accelerate_launch"]
    assert all(r["status"] == "ok" for r in rows.values())
    assert rows["bf16_fused_adamw"]["result"]["activations"] == "torch.bfloat16"
    assert rows["accelerate_launch"]["result"]["processes"] == 2
    # the predictor's labels are scored like the pipeline's: same test texts, a rate for each
    pred = rows["predict"]["result"]
    assert pred["enctune_texts_per_s"] > 0 and pred["pipeline_texts_per_s"] > 0 and 0 <= pred["enctune_accuracy"] <= 1
    assert "| accelerate_launch | ok |" in p.stdout


def test_gpu_check_refuses_to_run_for_real_without_a_gpu():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU, on any machine
    p = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh")], capture_output=True, text=True, timeout=120,
                       env=env)
    assert p.returncode == 2 and "--dry-run" in p.stderr
