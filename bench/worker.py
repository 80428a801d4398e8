"""``python -m bench.worker <variant> <json-args>``: run one measured variant in this process.

Each variant runs in a fresh interpreter so that what one measures (imports, model load,
peak resident memory, allocator warm-up) cannot leak into another. The worker:

- sets ``HF_HUB_OFFLINE=1``, ``TRANSFORMERS_OFFLINE=1``, ``TOKENIZERS_PARALLELISM=false`` and
  any ``env`` mapping in the arguments (for example ``ENCTUNE_CACHE``) before importing
  anything from Hugging Face or enctune;
- seeds torch with 42;
- sends everything the variant prints to stderr, and prints exactly one JSON object as the
  last line of stdout: the variant's figures plus ``status`` (``ok`` or ``failed``),
  ``error`` when failed, ``peak_rss_mb`` (``ru_maxrss`` of this process: the high-water mark
  of resident memory over its whole life) and ``load_avg_start`` (1-minute load average
  when the worker started, to spot a busy machine);
- exits 0 when the variant succeeded, 1 when it raised.

``VARIANTS`` is the registry: name -> (module in ``bench``, function, preset arguments).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import resource
import sys
import time
import traceback

VARIANTS: dict[str, tuple[str, str, dict]] = {
    "machine": ("worker", "machine", {}),
    "enctune_full": ("enctune_runs", "full", {}),
    "enctune_probe_cold": ("enctune_runs", "probe", {}),
    "enctune_probe_warm": ("enctune_runs", "probe", {}),
    "enctune_fp32": ("enctune_runs", "predict", {"precision": None}),
    "enctune_fast": ("enctune_runs", "predict", {"precision": "fastest"}),
    "enctune_onnx": ("enctune_runs", "predict", {"precision": "fp32"}),
    "enctune_onnx_int8": ("enctune_runs", "predict", {"precision": "int8"}),
    "predict_export": ("enctune_runs", "export", {}),
    "trainer_pad128": ("trainer_runs", "full_finetune", {"recipe": "pad128"}),
    "trainer_best": ("trainer_runs", "full_finetune", {"recipe": "best"}),
    "trainer_frozen": ("trainer_runs", "frozen", {}),
    "predict_setup": ("trainer_runs", "full_finetune", {"recipe": "best"}),
    "pipeline": ("trainer_runs", "pipeline_predict", {}),
    "st_logreg": ("st_runs", "st_logreg", {}),
    # the task rows (bench/task_rows.py): the row passes each variant its data, budget and scores
    "enctune_rte": ("enctune_tasks", "train", {}),
    "enctune_conll": ("enctune_tasks", "train", {}),
    "enctune_goemotions": ("enctune_tasks", "train", {}),
    "enctune_squad": ("enctune_tasks", "train", {}),
    "enctune_stsb": ("enctune_tasks", "train", {}),
    "cosine_stsb": ("enctune_tasks", "cosine_reference", {}),
    "trainer_rte": ("trainer_tasks", "pairs", {}),
    "trainer_conll": ("trainer_tasks", "tag", {}),
    "trainer_goemotions": ("trainer_tasks", "multilabel", {}),
    "trainer_squad": ("trainer_qa", "qa", {}),
}

SEED = 42


def machine(args: dict) -> dict:
    """The machine description; also resolves the default encoder folder for the other workers."""
    from .machine import describe

    encoder = args.get("encoder")
    if not encoder:
        from enctune.encoders import default_encoder_path

        encoder = str(default_encoder_path())
    return describe(encoder)


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def run(variant: str, args: dict) -> dict:
    os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    os.environ.update({k: str(v) for k, v in args.get("env", {}).items()})
    result: dict = {"variant": variant, "status": "ok", "load_avg_start": round(os.getloadavg()[0], 2)}
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        try:
            if variant not in VARIANTS:
                raise ValueError(f"unknown variant '{variant}'; known: {', '.join(sorted(VARIANTS))}")
            module, func, preset = VARIANTS[variant]
            import torch

            torch.manual_seed(SEED)
            fn = getattr(importlib.import_module(f"bench.{module}"), func)
            result.update(fn({**preset, **args}))
        except Exception as e:  # a failed variant is a result, not a crash of the bench
            traceback.print_exc()
            result["status"] = "failed"
            result["error"] = f"{type(e).__name__}: {e}"
    result["worker_seconds"] = round(time.perf_counter() - t0, 2)
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m bench.worker <variant> <json-args>", file=sys.stderr)
        return 2
    result = run(argv[0], json.loads(argv[1]))
    print(json.dumps(result, default=str), flush=True)
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
