"""The Hugging Face side: ``Trainer`` fine-tuning and the ``text-classification`` pipeline.

These are the tools a user would reach for instead of enctune, configured the way their
documentation suggests, with the same hyper-parameters as enctune (batch 32, warm-up
ratio 0.1, weight decay 0.01, seed 42, fp32 unless the CPU has native bf16):

- recipe ``pad128``: every text padded to 128 tokens (``padding="max_length"``), the
  pattern of most fine-tuning tutorials;
- recipe ``best``: dynamic padding (``DataCollatorWithPadding``), length-grouped batches
  (``train_sampling_strategy="group_by_length"`` in transformers 5, ``group_by_length=True``
  before; whichever the installed version has), truncation at ``max_length`` (256 by
  default, enctune's default), bf16 only where the CPU computes it natively (on a GPU,
  ``args["device"] == "cuda"`` as ``bench/gpu_check.py`` runs it: bf16 where the GPU has it);
- ``frozen``: the ``best`` recipe with every ``model.base_model`` parameter frozen, so only
  the classifier trains (3 epochs, lr 1e-3);
- ``pipeline_predict``: ``pipeline("text-classification")`` over the test texts with
  ``batch_size=32`` and with the default, reporting the faster.

Training time is ``trainer.train()`` timed around the call. ``train_tokens`` counts the real
(non-pad) tokens the model saw (x epochs), so the FLOP rate the report derives from it is
useful work, comparable across padding schemes. With length grouping ``Trainer.predict``
may return rows in another order, so accuracy is scored against ``label_ids`` from the same
``PredictionOutput``, never against the dataset order.
"""

from __future__ import annotations

import inspect
import time

import numpy as np

from .machine import has_native_bf16
from .measure import WARMUP_TEXTS, accuracy, canonical_label, id2label, load_folder, scratch_dir

SEED = 42


def _encoder_path(args: dict) -> str:
    return args["encoder"]


def _tokenize(tok, texts: list[str], labels: list[int], recipe: str, max_length: int) -> tuple[list[dict], int]:
    """Rows of model inputs and the number of real tokens in them."""
    if recipe == "pad128":
        enc = tok(texts, padding="max_length", max_length=128, truncation=True)
    else:
        enc = tok(texts, truncation=True, max_length=max_length)
    rows = [{k: enc[k][i] for k in enc.keys()} | {"labels": labels[i]} for i in range(len(texts))]
    real_tokens = sum(sum(mask) for mask in enc["attention_mask"])
    return rows, int(real_tokens)


def _bf16_available(device: str) -> bool:
    if device == "cuda":
        import torch

        return torch.cuda.is_bf16_supported()
    return has_native_bf16()


def _training_arguments(out_dir: str, recipe: str, epochs: int, lr: float,
                        device: str = "cpu") -> tuple[object, dict]:
    """``TrainingArguments`` for a recipe on ``device`` (cpu or cuda), and a note of the options chosen."""
    from transformers import TrainingArguments

    params = inspect.signature(TrainingArguments).parameters
    kw: dict = {
        "output_dir": out_dir, "per_device_train_batch_size": 32, "per_device_eval_batch_size": 64,
        "num_train_epochs": epochs, "learning_rate": lr, "weight_decay": 0.01, "seed": SEED,
        "eval_strategy": "no", "save_strategy": "no", "report_to": [], "use_cpu": device == "cpu",
        "logging_steps": 10**9, "dataloader_num_workers": 0, "disable_tqdm": True,
    }
    # transformers 5 folded warmup_ratio into warmup_steps (a float below 1 is a ratio)
    kw["warmup_ratio" if "warmup_ratio" in params else "warmup_steps"] = 0.1
    note = {"recipe": recipe, "precision": "fp32", "sampler": "random"}
    if recipe != "pad128":
        if "train_sampling_strategy" in params:
            kw["train_sampling_strategy"] = "group_by_length"
            note["sampler"] = "train_sampling_strategy=group_by_length"
        else:
            kw["group_by_length"] = True
            note["sampler"] = "group_by_length=True"
        if _bf16_available(device):
            kw["bf16"] = True
            note["precision"] = "bf16"
        else:
            note["precision"] = "fp32 (no native bf16)"
    return TrainingArguments(**kw), note


def _build(args: dict, recipe: str, epochs: int, lr: float, out_dir: str, freeze: bool = False):
    """Tokenizer, model, Trainer and the tokenised splits for one run."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        default_data_collator,
    )

    path = _encoder_path(args)
    splits = load_folder(args["data"])
    names = sorted({lab for _, labels in splits.values() for lab in labels})
    label_id = {name: i for i, name in enumerate(names)}
    max_length = int(args.get("max_length") or 256)
    tok = AutoTokenizer.from_pretrained(path)
    data, real_tokens = {}, {}
    for split, (texts, labels) in splits.items():
        if split == "validation":
            continue  # the Trainer peers do not evaluate during training
        data[split], real_tokens[split] = _tokenize(tok, texts, [label_id[x] for x in labels], recipe, max_length)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=len(names), id2label=dict(enumerate(names)), label2id=label_id)
    if freeze:
        for p in model.base_model.parameters():
            p.requires_grad_(False)
    targs, note = _training_arguments(out_dir, recipe, epochs, lr, args.get("device", "cpu"))
    collator = default_data_collator if recipe == "pad128" else DataCollatorWithPadding(tok)
    trainer = Trainer(model=model, args=targs, train_dataset=data["train"], data_collator=collator,
                      processing_class=tok)
    note["max_length"] = 128 if recipe == "pad128" else max_length
    return tok, model, trainer, data, real_tokens, note


def _train_and_score(trainer, data: dict, do_predict: bool) -> dict:
    t0 = time.perf_counter()
    output = trainer.train()
    train_s = time.perf_counter() - t0
    # the Trainer's own FLOP count: 6 x non-embedding params x input_ids.numel(), padding included
    out = {"train_seconds": round(train_s, 2), "trainer_total_flos": getattr(trainer.state, "total_flos", None),
           "trainer_train_runtime": output.metrics.get("train_runtime")}
    if do_predict and "test" in data:
        t0 = time.perf_counter()
        pred = trainer.predict(data["test"])
        out["predict_seconds"] = round(time.perf_counter() - t0, 2)
        # score against the label_ids returned with the predictions: length grouping reorders rows
        out["test_accuracy"] = round(float(np.mean(pred.predictions.argmax(-1) == pred.label_ids)), 4)
    return out


def full_finetune(args: dict) -> dict:
    """Full fine-tuning with ``Trainer`` (recipe ``pad128`` or ``best``); optionally saves the model."""
    recipe, epochs = args["recipe"], int(args.get("epochs", 1))
    t_start = time.perf_counter()
    with scratch_dir("enctune-bench-trainer-") as tmp:
        tok, model, trainer, data, real_tokens, note = _build(args, recipe, epochs, 1e-4, str(tmp))
        out = _train_and_score(trainer, data, args.get("predict", True))
        if args.get("save_to"):
            model.save_pretrained(args["save_to"])
            tok.save_pretrained(args["save_to"])
    n = len(data["train"])
    out.update({
        "train_examples": n,
        "train_examples_per_second": round(n * epochs / max(out["train_seconds"], 1e-9), 2),
        "train_tokens": real_tokens["train"] * epochs,
        "wall_seconds": round(time.perf_counter() - t_start, 2),
        **note,
    })
    return out


def frozen(args: dict) -> dict:
    """Encoder frozen, classifier trained with ``Trainer`` (3 epochs, lr 1e-3); wall time end to end."""
    t_start = time.perf_counter()
    with scratch_dir("enctune-bench-frozen-") as tmp:
        _, model, trainer, data, _, note = _build(args, "best", 3, 1e-3, str(tmp), freeze=True)
        out = _train_and_score(trainer, data, True)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    out.update({"wall_seconds": round(time.perf_counter() - t_start, 2), "trainable_params": trainable,
                "train_examples": len(data["train"]), **note, "recipe": "best, encoder frozen"})
    return out


def pipeline_predict(args: dict) -> dict:
    """``pipeline("text-classification")`` on the test texts, batch 32 and default; the faster is reported."""
    from transformers import pipeline

    folder = args["model"]
    texts, gold = load_folder(args["data"])["test"]
    names = id2label(folder)
    t0 = time.perf_counter()
    clf = pipeline("text-classification", model=folder, device=0 if args.get("device") == "cuda" else -1)
    load_s = time.perf_counter() - t0
    clf(texts[:WARMUP_TEXTS])
    passes = {}
    for name, kwargs in (("batch_size=32", {"batch_size": 32}), ("default", {})):
        t0 = time.perf_counter()
        preds = clf(texts, truncation=True, **kwargs)
        seconds = time.perf_counter() - t0
        passes[name] = (seconds, [canonical_label(p["label"], names) for p in preds])
    best = min(passes, key=lambda k: passes[k][0])
    seconds, labels = passes[best]
    other = next(k for k in passes if k != best)
    return {
        "load_seconds": round(load_s, 3),
        "predict_seconds": round(seconds, 3),
        "examples_per_second": round(len(texts) / max(seconds, 1e-9), 1),
        "n_texts": len(texts),
        "best_setting": best,
        "examples_per_second_by_setting": {k: round(len(texts) / max(s, 1e-9), 1) for k, (s, _) in passes.items()},
        "settings_agree": accuracy(passes[other][1], labels),
        "test_accuracy": accuracy(labels, gold),
        "labels": labels,
    }
