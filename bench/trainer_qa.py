"""The Hugging Face ``Trainer`` peer for extractive question answering (SQuAD-style JSONL).

The recipe of the ``transformers`` question-answering example, written out here:

- features: ``tok(question.lstrip(), context, truncation="only_second", max_length=384,
  stride=128, return_overflowing_tokens=True, return_offsets_mapping=True,
  padding="max_length")``, so a long context becomes several overlapping windows;
- train targets: the first and last token of the first gold answer in that window, or the
  ``[CLS]`` position when the answer is not wholly inside it;
- ``AutoModelForQuestionAnswering`` trained with ``Trainer`` and ``default_data_collator``
  (learning rate, epochs and batch size from the row, the rest ``TrainingArguments``'
  defaults);
- post-processing: for every window, the ``n_best`` (20) highest start and end logits; a
  span is kept when both ends lie in the context, end >= start and it is at most
  ``max_answer_length`` (30) tokens; the best start+end score over all windows of a question
  wins, and its text is cut from the context by the offsets mapping (SQuAD v1: there is no
  "no answer");
- exact match and F1 (0-100) with ``bench.scorers.squad_scores``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .data import read_jsonl
from .measure import scratch_dir
from .trainer_tasks import budget_note, timed_train, training_arguments

MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")


def _windows(tok, rows: list[dict], max_length: int, stride: int):
    enc = tok([r["question"].lstrip() for r in rows], [r["context"] for r in rows], truncation="only_second",
              max_length=max_length, stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True,
              padding="max_length")
    return enc, enc["overflow_to_sample_mapping"]


def train_features(tok, rows: list[dict], max_length: int, stride: int) -> list[dict]:
    """One training row per window, with the answer's token positions (or [CLS] when it is not inside)."""
    enc, sample_of = _windows(tok, rows, max_length, stride)
    feats = []
    for i, offsets in enumerate(enc["offset_mapping"]):
        ids = enc["input_ids"][i]
        cls = ids.index(tok.cls_token_id) if tok.cls_token_id in ids else 0
        seq = enc.sequence_ids(i)
        answers = rows[sample_of[i]]["answers"]
        start = end = cls
        if answers["answer_start"]:
            a_start = answers["answer_start"][0]
            a_end = a_start + len(answers["text"][0])
            first = seq.index(1)
            last = len(seq) - 1 - seq[::-1].index(1)
            if offsets[first][0] <= a_start and offsets[last][1] >= a_end:
                s = first
                while s <= last and offsets[s][0] <= a_start:
                    s += 1
                e = last
                while e >= first and offsets[e][1] >= a_end:
                    e -= 1
                start, end = s - 1, e + 1
        feats.append({k: enc[k][i] for k in MODEL_INPUTS if k in enc} | {"start_positions": start,
                                                                        "end_positions": end})
    return feats


def eval_features(tok, rows: list[dict], max_length: int, stride: int) -> tuple[list[dict], list[dict]]:
    """Model inputs per window, and per window its question id and context-only offsets."""
    enc, sample_of = _windows(tok, rows, max_length, stride)
    inputs, meta = [], []
    for i, offsets in enumerate(enc["offset_mapping"]):
        seq = enc.sequence_ids(i)
        inputs.append({k: enc[k][i] for k in MODEL_INPUTS if k in enc})
        meta.append({"id": rows[sample_of[i]]["id"],
                     "offsets": [o if seq[j] == 1 else None for j, o in enumerate(offsets)]})
    return inputs, meta


def best_answers(rows: list[dict], meta: list[dict], start_logits: np.ndarray, end_logits: np.ndarray,
                 n_best: int = 20, max_answer_length: int = 30) -> dict[str, str]:
    """The best-scoring span of every question over all its windows, as text."""
    context = {r["id"]: r["context"] for r in rows}
    best: dict[str, tuple[float, str]] = {}
    for f, m in enumerate(meta):
        offsets, s_log, e_log = m["offsets"], start_logits[f], end_logits[f]
        starts = np.argsort(s_log)[::-1][:n_best]
        ends = np.argsort(e_log)[::-1][:n_best]
        for s in starts:
            for e in ends:
                if s >= len(offsets) or e >= len(offsets) or offsets[s] is None or offsets[e] is None:
                    continue
                if e < s or e - s + 1 > max_answer_length:
                    continue
                score = float(s_log[s] + e_log[e])
                if m["id"] not in best or score > best[m["id"]][0]:
                    best[m["id"]] = (score, context[m["id"]][offsets[s][0]:offsets[e][1]])
    return {r["id"]: best.get(r["id"], (0.0, ""))[1] for r in rows}


def qa(args: dict) -> dict:
    """Train on ``train.jsonl``, answer ``test.jsonl``; EM and F1 (0-100) on test."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer, Trainer, default_data_collator

    from .scorers import squad_scores

    epochs, bs, lr = int(args["epochs"]), int(args["batch_size"]), float(args["lr"])
    max_len, stride = int(args["max_length"]), int(args["stride"])
    t_start = time.perf_counter()
    train = read_jsonl(Path(args["data"]) / "train.jsonl")
    test = read_jsonl(Path(args["data"]) / "test.jsonl")
    tok = AutoTokenizer.from_pretrained(args["encoder"])
    train_rows = train_features(tok, train, max_len, stride)
    test_inputs, test_meta = eval_features(tok, test, max_len, stride)
    model = AutoModelForQuestionAnswering.from_pretrained(args["encoder"])
    with scratch_dir("enctune-bench-qa-") as tmp:
        trainer = Trainer(model=model, args=training_arguments(str(tmp), epochs, bs, lr), train_dataset=train_rows,
                          data_collator=default_data_collator, processing_class=tok)
        train_s = timed_train(trainer)
        pred = trainer.predict(test_inputs)
    start_logits, end_logits = pred.predictions[:2]
    answers = best_answers(test, test_meta, start_logits, end_logits, int(args.get("n_best", 20)),
                           int(args.get("max_answer_length", 30)))
    scores = squad_scores(answers, {r["id"]: r["answers"]["text"] for r in test})
    return {"test_exact_match": round(scores["exact_match"], 2), "test_f1": round(scores["f1"], 2),
            "test_questions": len(test), "train_questions": len(train), "train_windows": len(train_rows),
            "test_windows": len(test_inputs), "train_seconds": train_s, "stride": stride,
            "wall_seconds": round(time.perf_counter() - t_start, 2), **budget_note(epochs, bs, lr, max_len)}
