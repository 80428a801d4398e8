"""Hugging Face ``Trainer`` peers for the task rows: text pairs, multi-label, token tagging.

Each follows the recipe of the matching ``transformers`` example script, with the budget
the row sets (epochs, batch size, learning rate) and otherwise ``TrainingArguments``'
defaults (no warm-up, no weight decay, linear decay, seed 42), on the default encoder:

- ``pairs``: ``AutoModelForSequenceClassification``, the tokenizer's pair encoding
  (``tok(text, text_pair)``), truncation at ``max_length``, dynamic padding
  (``DataCollatorWithPadding``); accuracy on the scored split.
- ``multilabel``: the same model with ``problem_type="multi_label_classification"`` (sigmoid +
  binary cross-entropy on float multi-hot targets), a fixed 0.5 threshold on the
  probabilities; micro- and macro-F1 on test, and how many test rows got no label at all.
- ``tag``: ``AutoModelForTokenClassification``; the words are tokenised with
  ``is_split_into_words=True``, the first sub-token of each word carries its tag and every
  other position ``-100``; ``DataCollatorForTokenClassification``. Each word's prediction is
  its first sub-token's; entity-level F1 on test comes from ``bench.scorers.chunk_scores``.

Train time is ``trainer.train()`` timed around the call; there is no evaluation while
training.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .data import read_jsonl
from .measure import scratch_dir

SEED = 42


def training_arguments(out_dir: str, epochs: int, batch_size: int, lr: float, group_by_length: bool = False):
    """The example scripts' settings: only the budget is set, everything else is the default.

    ``group_by_length`` (off in the examples) batches texts of similar length together: the
    same data, epochs and batch size with less padding, for a CPU where padding costs hours.
    A loss line every 50 steps goes to the worker's log, to follow a long run.
    """
    import inspect

    from transformers import TrainingArguments

    kw = {}
    if group_by_length:
        params = inspect.signature(TrainingArguments).parameters
        if "train_sampling_strategy" in params:  # transformers 5
            kw["train_sampling_strategy"] = "group_by_length"
        else:
            kw["group_by_length"] = True
    return TrainingArguments(
        output_dir=out_dir, per_device_train_batch_size=batch_size, per_device_eval_batch_size=64,
        num_train_epochs=epochs, learning_rate=lr, seed=SEED, eval_strategy="no", save_strategy="no",
        report_to=[], use_cpu=True, logging_steps=50, dataloader_num_workers=0, disable_tqdm=True, **kw)


def budget_note(epochs: int, batch_size: int, lr: float, max_length: int, group_by_length: bool = False) -> dict:
    return {"epochs": epochs, "batch_size": batch_size, "lr": lr, "max_length": max_length,
            "warmup": 0, "weight_decay": 0.0, "precision": "fp32",
            "sampler": "group_by_length" if group_by_length else "random"}


def timed_train(trainer) -> float:
    t0 = time.perf_counter()
    trainer.train()
    return round(time.perf_counter() - t0, 2)


def predict_in_order(trainer, rows):
    """``trainer.predict(rows)`` whose output row i belongs to ``rows[i]``. Under ``group_by_length``,
    transformers 5 length-groups the prediction batches too (and returns them in that order); the
    scorers that map predictions back to the input rows need the input order, so prediction runs with
    the sequential evaluation sampler."""
    if getattr(trainer.args, "train_sampling_strategy", None) == "group_by_length":
        trainer.args.train_sampling_strategy = "random"  # training is over: only the eval sampler reads it now
    elif getattr(trainer.args, "group_by_length", False):  # transformers 4
        trainer.args.group_by_length = False
    return trainer.predict(rows)


def _split_file(args: dict, split: str) -> list[dict]:
    return read_jsonl(Path(args["data"]) / f"{split}.jsonl")


def pairs(args: dict) -> dict:
    """Sentence-pair classification (RTE): accuracy on ``args["score_split"]``."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
    )

    epochs, bs, lr, max_len = int(args["epochs"]), int(args["batch_size"]), float(args["lr"]), int(args["max_length"])
    grouped = bool(args.get("group_by_length"))
    t_start = time.perf_counter()
    train, scored = _split_file(args, "train"), _split_file(args, args["score_split"])
    names = sorted({str(r["label"]) for r in train})
    label_id = {n: i for i, n in enumerate(names)}
    tok = AutoTokenizer.from_pretrained(args["encoder"])

    def encode(rows):
        enc = tok([r["text"] for r in rows], [r["text_pair"] for r in rows], truncation=True, max_length=max_len)
        return [{k: enc[k][i] for k in enc.keys()} | {"labels": label_id[str(r["label"])]}
                for i, r in enumerate(rows)]

    model = AutoModelForSequenceClassification.from_pretrained(
        args["encoder"], num_labels=len(names), id2label=dict(enumerate(names)), label2id=label_id)
    with scratch_dir("enctune-bench-pairs-") as tmp:
        trainer = Trainer(model=model, args=training_arguments(str(tmp), epochs, bs, lr, grouped),
                          train_dataset=encode(train), data_collator=DataCollatorWithPadding(tok),
                          processing_class=tok)
        train_s = timed_train(trainer)
        pred = trainer.predict(encode(scored))
    acc = float(np.mean(pred.predictions.argmax(-1) == pred.label_ids))
    return {f"{args['score_split']}_accuracy": round(acc, 4), "train_seconds": train_s,
            "train_examples": len(train), "wall_seconds": round(time.perf_counter() - t_start, 2),
            **budget_note(epochs, bs, lr, max_len, grouped)}


def multilabel(args: dict) -> dict:
    """Multi-label classification (GoEmotions) with a fixed 0.5 threshold: micro/macro F1 on test."""
    from sklearn.metrics import f1_score
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
    )

    epochs, bs, lr, max_len = int(args["epochs"]), int(args["batch_size"]), float(args["lr"]), int(args["max_length"])
    grouped = bool(args.get("group_by_length"))
    t_start = time.perf_counter()
    train, test = _split_file(args, "train"), _split_file(args, "test")
    names = sorted({lab for r in train for lab in r["labels"]})
    label_id = {n: i for i, n in enumerate(names)}
    tok = AutoTokenizer.from_pretrained(args["encoder"])

    def targets(rows) -> np.ndarray:
        y = np.zeros((len(rows), len(names)), dtype=np.float32)
        for i, r in enumerate(rows):
            for lab in r["labels"]:
                if lab in label_id:
                    y[i, label_id[lab]] = 1.0
        return y

    def encode(rows):
        enc = tok([r["text"] for r in rows], truncation=True, max_length=max_len)
        y = targets(rows)
        return [{k: enc[k][i] for k in enc.keys()} | {"labels": y[i].tolist()} for i in range(len(rows))]

    model = AutoModelForSequenceClassification.from_pretrained(
        args["encoder"], num_labels=len(names), problem_type="multi_label_classification",
        id2label=dict(enumerate(names)), label2id=label_id)
    with scratch_dir("enctune-bench-multilabel-") as tmp:
        trainer = Trainer(model=model, args=training_arguments(str(tmp), epochs, bs, lr, grouped),
                          train_dataset=encode(train), data_collator=DataCollatorWithPadding(tok),
                          processing_class=tok)
        train_s = timed_train(trainer)
        pred = trainer.predict(encode(test))
    probs = 1.0 / (1.0 + np.exp(-pred.predictions))
    yhat = (probs >= 0.5).astype(int)
    gold = pred.label_ids.astype(int)
    return {"test_micro_f1": round(float(f1_score(gold, yhat, average="micro", zero_division=0)), 4),
            "test_macro_f1": round(float(f1_score(gold, yhat, average="macro", zero_division=0)), 4),
            "test_rows_without_label": int((yhat.sum(1) == 0).sum()), "test_rows": len(test),
            "threshold": 0.5, "train_seconds": train_s, "train_examples": len(train),
            "wall_seconds": round(time.perf_counter() - t_start, 2), **budget_note(epochs, bs, lr, max_len, grouped)}


def tag(args: dict) -> dict:
    """Token classification (CoNLL-2003): entity-level micro F1 on test, scored by ``chunk_scores``."""
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
    )

    from .scorers import chunk_scores

    epochs, bs, lr, max_len = int(args["epochs"]), int(args["batch_size"]), float(args["lr"]), int(args["max_length"])
    grouped = bool(args.get("group_by_length"))
    t_start = time.perf_counter()
    train, test = _split_file(args, "train"), _split_file(args, "test")
    names = sorted({t for r in train for t in r["tags"]})
    label_id = {n: i for i, n in enumerate(names)}
    tok = AutoTokenizer.from_pretrained(args["encoder"])

    def encode(rows):
        enc = tok([r["tokens"] for r in rows], is_split_into_words=True, truncation=True, max_length=max_len)
        out, firsts = [], []
        for i, r in enumerate(rows):
            labels, first, seen = [], [], set()
            for pos, w in enumerate(enc.word_ids(i)):
                if w is None or w in seen:
                    labels.append(-100)
                else:
                    seen.add(w)
                    labels.append(label_id.get(r["tags"][w], label_id.get("O", 0)))
                    first.append((w, pos))
            out.append({k: enc[k][i] for k in enc.keys()} | {"labels": labels})
            firsts.append(first)
        return out, firsts

    model = AutoModelForTokenClassification.from_pretrained(
        args["encoder"], num_labels=len(names), id2label=dict(enumerate(names)), label2id=label_id)
    train_rows, _ = encode(train)
    test_rows, test_firsts = encode(test)
    with scratch_dir("enctune-bench-tag-") as tmp:
        trainer = Trainer(model=model, args=training_arguments(str(tmp), epochs, bs, lr, grouped), train_dataset=train_rows,
                          data_collator=DataCollatorForTokenClassification(tok), processing_class=tok)
        train_s = timed_train(trainer)
        pred = predict_in_order(trainer, test_rows)
    ids = pred.predictions.argmax(-1)
    predicted = []
    for i, r in enumerate(test):
        tags = ["O"] * len(r["tokens"])  # words cut off by truncation are predicted O
        for w, pos in test_firsts[i]:
            tags[w] = names[int(ids[i, pos])]
        predicted.append(tags)
    scores = chunk_scores([r["tags"] for r in test], predicted)
    return {"test_f1": round(scores["f1"], 4), "test_precision": round(scores["precision"], 4),
            "test_recall": round(scores["recall"], 4),
            "test_per_type_f1": {t: round(s["f1"], 4) for t, s in scores["per_type"].items()},
            "test_entities": scores["n_gold"], "train_seconds": train_s, "train_examples": len(train),
            "wall_seconds": round(time.perf_counter() - t_start, 2), **budget_note(epochs, bs, lr, max_len, grouped)}
