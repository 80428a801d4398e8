"""The GPU check: what only a GPU can show, in one short script (``bench/gpu_check.sh`` runs it).

    bash bench/gpu_check.sh              # on a machine with a CUDA GPU: about 5 minutes on one H100
    bash bench/gpu_check.sh --dry-run    # anywhere: the same steps on the CPU on 64 rows (the test suite runs it)

Steps, each timed, each a row of the table it prints (and of ``--out``'s JSON):

1. ``environment``: torch, CUDA, the device, whether it computes bf16.
2. ``bf16_fused_adamw``: three AdamW steps (``fused=True``) of a small network under bf16 autocast: the
   activations are bf16, the loss falls, the fp32 master weights stay finite.
3. ``sdpa``: the default encoder loaded with ``attn_implementation="sdpa"`` and ``"eager"`` gives the same
   vectors on padded batches (fp32); on CUDA, the flash kernel runs a bf16 attention call on its own.
4. ``enctune_full``: ``enctune train --strategy full --epochs 1`` as a user runs it (a fresh process; bf16 on
   the GPU by ``--precision auto``), wall time, test accuracy and the phases of metrics.json.
5. ``trainer_best``: the Hugging Face Trainer's best recipe on the same device (bf16, dynamic padding,
   length-grouped batches; ``bench.trainer_runs``), wall time and test accuracy.
6. ``predict``: enctune's predictor against ``pipeline("text-classification")`` on the test texts, both in
   fp32 on the device, texts per second and label agreement with each tool's own model.
7. ``accelerate_launch``: ``accelerate launch`` of ``enctune train`` on every GPU (two CPU processes over gloo
   in the dry run), which must finish and write one run folder.

A step that fails is a row with its error, and the script exits 1 after the table, so that one broken
path does not hide the others.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from .measure import write_json

ROOT = Path(__file__).resolve().parent.parent
DRY_ROWS = {"train": 64, "validation": 32, "test": 32}


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def environment(ctx: dict) -> dict:
    import torch

    out = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": ctx["device"]}
    if ctx["device"] == "cuda":
        out.update(gpus=torch.cuda.device_count(), name=torch.cuda.get_device_name(0),
                   bf16=torch.cuda.is_bf16_supported())
    return out


def bf16_fused_adamw(ctx: dict) -> dict:
    import torch

    torch.manual_seed(0)
    dev = ctx["device"]
    net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 2)).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, fused=True)
    x, y = torch.randn(128, 64, device=dev), torch.randint(0, 2, (128,), device=dev)
    losses = []
    for _ in range(3):
        with torch.autocast(dev, dtype=torch.bfloat16):
            logits = net(x)
            loss = torch.nn.functional.cross_entropy(logits.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    ok = logits.dtype == torch.bfloat16 and losses[-1] < losses[0] and all(
        bool(torch.isfinite(p).all()) and p.dtype == torch.float32 for p in net.parameters())
    if not ok:
        raise AssertionError(f"activations {logits.dtype}, losses {losses}")
    return {"activations": str(logits.dtype), "losses": [round(v, 4) for v in losses]}


def sdpa(ctx: dict) -> dict:
    import torch
    from transformers import AutoModel, AutoTokenizer

    path, dev = ctx["encoder"], ctx["device"]
    tok = AutoTokenizer.from_pretrained(path)
    batch = tok(["a short one", "a much longer text that needs padding on the other row of the batch"],
                padding=True, return_tensors="pt").to(dev)
    mask = batch["attention_mask"].unsqueeze(-1)
    vectors = {}
    for impl in ("sdpa", "eager"):
        model = AutoModel.from_pretrained(path, attn_implementation=impl).to(dev).eval()
        with torch.inference_mode():
            h = model(**batch).last_hidden_state
        vectors[impl] = (h * mask).sum(1) / mask.sum(1)
    diff = float((vectors["sdpa"] - vectors["eager"]).abs().max())
    if diff > 1e-4:
        raise AssertionError(f"sdpa and eager differ by {diff:.2e}")
    out = {"max_abs_difference": f"{diff:.1e}"}
    if dev == "cuda":
        from torch.nn.attention import SDPBackend, sdpa_kernel

        q = torch.randn(8, 12, 256, 64, device=dev, dtype=torch.bfloat16)
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            torch.nn.functional.scaled_dot_product_attention(q, q, q)
        out["flash"] = "ran"
    return out


def _enctune(*args: str, launcher: list[str] | None = None) -> tuple[float, subprocess.CompletedProcess]:
    cmd = (launcher or [sys.executable]) + ["-m", "enctune", *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if p.returncode:
        raise RuntimeError(f"{' '.join(cmd[-8:])} exited {p.returncode}: {p.stderr.strip()[-800:]}")
    return time.perf_counter() - t0, p


def enctune_full(ctx: dict) -> dict:
    out = ctx["work"] / "enctune-full"
    seconds, _ = _enctune("train", "--data", str(ctx["data"]), "--out", str(out), "--strategy", "full",
                          "--epochs", "1", "--quiet")
    m = json.loads((out / "metrics.json").read_text())
    ctx["enctune_run"] = out
    return {"wall_seconds": round(seconds, 1), "test_accuracy": round(m["test"]["accuracy"], 4),
            "precision": m["costs"]["precision"], "device": m["costs"]["device"],
            "loop_examples_per_s": m["costs"]["train_examples_per_second"], "phases": m["costs"]["phases"]}


def trainer_best(ctx: dict) -> dict:
    from bench.trainer_runs import full_finetune

    t0 = time.perf_counter()
    saved = ctx["work"] / "trainer-best"
    r = full_finetune({"encoder": ctx["encoder"], "data": str(ctx["data"]), "recipe": "best", "epochs": 1,
                       "device": ctx["device"], "save_to": str(saved)})
    ctx["trainer_model"] = saved
    return {"wall_seconds": round(time.perf_counter() - t0, 1), "test_accuracy": r["test_accuracy"],
            "precision": r["precision"], "loop_examples_per_s": r["train_examples_per_second"]}


def predict(ctx: dict) -> dict:
    import enctune
    from bench.measure import load_folder
    from bench.trainer_runs import pipeline_predict

    texts, gold = load_folder(ctx["data"])["test"]
    model = enctune.load(ctx["enctune_run"], precision="fp32")
    model.predict(texts[:16])
    t0 = time.perf_counter()
    labels = [p["label"] for p in model.predict(texts)]
    seconds = time.perf_counter() - t0
    pipe = pipeline_predict({"model": str(ctx["trainer_model"]), "data": str(ctx["data"]), "device": ctx["device"]})
    rate = len(texts) / seconds
    return {"enctune_texts_per_s": round(rate, 1), "pipeline_texts_per_s": pipe["examples_per_second"],
            "ratio": round(rate / pipe["examples_per_second"], 2),
            "enctune_accuracy": round(sum(a == b for a, b in zip(labels, gold, strict=True)) / len(gold), 4),
            "pipeline_accuracy": pipe["test_accuracy"]}


def accelerate_launch(ctx: dict) -> dict:
    import torch

    gpus = torch.cuda.device_count() if ctx["device"] == "cuda" else 0
    procs = max(gpus, 2 if ctx["device"] == "cpu" else 1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(procs),
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                "--main_process_port", str(port)] + (["--multi_gpu"] if procs > 1 else [])
    out = ctx["work"] / "launched"
    seconds, _ = _enctune("train", "--data", str(ctx["small"]), "--out", str(out), "--strategy", "full",
                          "--epochs", "1", "--quiet", launcher=launcher)
    m = json.loads((out / "metrics.json").read_text())
    if m["costs"]["processes"] != procs:
        raise AssertionError(f"the run records {m['costs']['processes']} processes, not {procs}")
    return {"processes": procs, "wall_seconds": round(seconds, 1), "test_accuracy": round(m["test"]["accuracy"], 4)}


STEPS = (environment, bf16_fused_adamw, sdpa, enctune_full, trainer_best, predict, accelerate_launch)


def _subset(src: Path, dst: Path, rows: dict[str, int]) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for split, n in rows.items():
        lines = (src / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()[:n]
        (dst / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="run every step on the CPU on a 64-row slice")
    ap.add_argument("--data", default=str(ROOT / "examples" / "sst2"))
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from enctune.encoders.resolve import default_encoder_path

    device = _device()
    if device != "cuda" and not args.dry_run:
        print("gpu_check: no CUDA device here; run with --dry-run to check the steps on the CPU.", file=sys.stderr)
        return 2
    rows, failed = [], False
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = _subset(Path(args.data), work / "data", DRY_ROWS) if args.dry_run else Path(args.data)
        ctx = {"device": "cpu" if args.dry_run else device, "encoder": str(default_encoder_path()), "data": data,
               "small": _subset(Path(args.data), work / "small", DRY_ROWS), "work": work}
        for step in STEPS:
            t0 = time.perf_counter()
            try:
                result, status = step(ctx), "ok"
            except Exception as e:  # one broken path must not hide the others
                result, status, failed = {"error": f"{type(e).__name__}: {e}"}, "FAILED", True
                traceback.print_exc(file=sys.stderr)
            rows.append({"step": step.__name__, "status": status, "seconds": round(time.perf_counter() - t0, 1),
                         "result": result})
            print(f"{step.__name__}: {status} ({rows[-1]['seconds']} s)", file=sys.stderr, flush=True)
    print(f"| step | status | seconds | result |  ({'dry run, CPU' if args.dry_run else device})\n"
          "| --- | --- | --- | --- |")
    for r in rows:
        shown = {k: v for k, v in r["result"].items() if k != "phases"}
        print(f"| {r['step']} | {r['status']} | {r['seconds']} | {json.dumps(shown)} |")
    if args.out:
        write_json(args.out, {"dry_run": args.dry_run, "rows": rows})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
