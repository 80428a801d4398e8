"""The enctune side of every row, called by ``bench.worker`` in a fresh process.

- ``full``: ``enctune.train(strategy="full")`` for one epoch, batch 32, lr 1e-4, warm-up
  ratio 0.1, seed 42. Train figures come from the run's own ``metrics["costs"]``:
  ``train_seconds`` (the loop, which includes enctune's validation passes, twice an
  epoch), ``eval_seconds`` when enctune reports it, and ``tokens_seen`` (real, non-pad
  tokens), which feed the FLOP rate computed by the report.
- ``probe``: ``enctune.train(strategy="probe")``, timed end to end around the call; the
  feature cache is ``$ENCTUNE_CACHE``, which the orchestrator points at a fresh folder for
  the cold run and reuses for the warm one.
- ``predict``: ``enctune.load(folder[, precision])`` on a plain Hugging Face
  sequence-classification folder (or on its ONNX export), then ``.predict(texts)``; load and
  predict are timed apart, after a warm-up on the first few texts (the same warm-up the
  pipeline gets).
- ``export``: ``enctune export`` of that folder to ONNX with an int8 copy (set-up of the
  predict row; its check against PyTorch is recorded).
"""

from __future__ import annotations

import time

from .measure import WARMUP_TEXTS, accuracy, canonical_label, id2label, load_folder, scratch_dir

HYPER = {"epochs": 1, "batch_size": 32, "lr": 1e-4, "warmup_ratio": 0.1, "seed": 42}


def _train(args: dict, strategy: str, hyper: dict) -> tuple[dict, float]:
    import enctune

    with scratch_dir("enctune-bench-run-") as tmp:
        flags = {"data": args["data"], "out": str(tmp / "run"), "strategy": strategy, **hyper}
        if args.get("max_length"):
            flags["max_length"] = int(args["max_length"])
        t0 = time.perf_counter()
        run = enctune.train(**flags)
        wall = time.perf_counter() - t0
    return run.metrics, wall


def _accuracy(metrics: dict, split: str) -> float | None:
    scores = metrics.get(split) or {}
    return scores.get("accuracy")


def full(args: dict) -> dict:
    """Full fine-tuning: throughput, accuracy and cost as enctune itself counts them."""
    metrics, wall = _train(args, "full", HYPER)
    costs = metrics["costs"]
    n_train = metrics["data"]["sizes"]["train"]
    examples = costs.get("train_examples_seen", n_train)
    train_s = costs["train_seconds"]
    eval_s = costs.get("eval_seconds")
    out = {
        "train_examples": n_train,
        "train_seconds": train_s,
        "train_examples_per_second": round(examples / max(train_s, 1e-9), 2),
        "eval_seconds": eval_s,
        "train_tokens": costs.get("tokens_seen"),
        "train_flops_estimate": costs.get("train_flops_estimate"),
        "test_accuracy": _accuracy(metrics, "test"),
        "validation_accuracy": _accuracy(metrics, "validation"),
        "wall_seconds": round(wall, 2),
        "precision": costs.get("precision"),
        "steps": costs.get("steps"),
        "max_length": args.get("max_length"),
        "enctune_peak_rss_mb": costs.get("peak_rss_mb"),
    }
    if eval_s is not None:
        out["train_examples_per_second_excl_eval"] = round(examples / max(train_s - eval_s, 1e-9), 2)
    return out


def probe(args: dict) -> dict:
    """Frozen encoder + head on cached features, end to end around ``enctune.train``."""
    # the head trains on cached features with the probe's own batch size: only the Trainer peer needs 32
    metrics, wall = _train(args, "probe", {"seed": 42})
    costs = metrics["costs"]
    return {
        "wall_seconds": round(wall, 2),
        "test_accuracy": _accuracy(metrics, "test"),
        "validation_accuracy": _accuracy(metrics, "validation"),
        "head_train_seconds": costs.get("train_seconds"),
        "cache_hits": costs.get("cache_hits"),
        "encode_tokens": costs.get("encode_tokens"),
        "train_examples": metrics["data"]["sizes"]["train"],
    }


def predict(args: dict) -> dict:
    """Load a Hugging Face classification folder with enctune and label the test texts."""
    import enctune

    folder, precision = args["model"], args.get("precision")
    texts, gold = load_folder(args["data"])["test"]
    names = id2label(args.get("label_folder", folder))  # an ONNX export names its labels as its source does
    t0 = time.perf_counter()
    model = enctune.load(folder) if precision is None else enctune.load(folder, precision=precision)
    load_s = time.perf_counter() - t0
    model.predict(texts[:WARMUP_TEXTS])
    t0 = time.perf_counter()
    preds = model.predict(texts)
    predict_s = time.perf_counter() - t0
    labels = [canonical_label(p["label"], names) for p in preds]
    return {
        "load_seconds": round(load_s, 3),
        "predict_seconds": round(predict_s, 3),
        "examples_per_second": round(len(texts) / max(predict_s, 1e-9), 1),
        "n_texts": len(texts),
        "test_accuracy": accuracy(labels, gold),
        "precision": precision or "default",
        "labels": labels,
    }


def export(args: dict) -> dict:
    """ONNX export (fp32 + int8) of a classification folder, checked on ``check_data``."""
    from enctune.serve.export import export_onnx

    t0 = time.perf_counter()
    check = export_onnx(args["model"], args["out"], quantize="int8", check_data=args.get("check_data"),
                        max_check=int(args.get("max_check", 2000)))
    return {"export_seconds": round(time.perf_counter() - t0, 2), "check": check}
