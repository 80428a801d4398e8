"""``extract``: extractive question answering, the answer a span of the context.

Data: SQuAD-style rows ``{"question", "context", "answers": {"text": [...], "answer_start": [...]}}``
(JSONL, or the nested SQuAD JSON ``data -> paragraphs -> qas``); ``answers`` may also be a
list of ``{"text", "answer_start"}``. Every answer's offset is checked against its context.

A question and its context are one input (``question [SEP] context``); a context longer
than ``max_length`` is cut into windows that overlap by ``doc_stride`` tokens, each a
training row. Head: a linear layer giving a start and an end logit per token,
(B, T, H) -> (B, T, 2). Target: the first answer's first and last token when the whole
answer lies in the window, else the first token (no answer here); loss: the mean of the
start and end cross-entropies.

Decoding: in every window, the 20 best starts and ends inside the context, end >= start,
at most ``max_answer_length`` tokens; the span with the highest start + end logit over all
windows of a question wins, mapped back to characters of the context.
Metrics: exact match and F1 (primary) in 0-100 with the SQuAD v1.1 normalisation (lower
case, punctuation and the articles a/an/the removed, whitespace collapsed), each the best
over the gold answers.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import ClassVar

import numpy as np
from pydantic import Field

from ..data import Columns, Examples, Table
from ..encoders.tokens import Tokenized
from ..errors import UserError
from .base import ColumnHints, Prepared, Task, TaskOptions, named_column, rows_message
from .registry import register

N_BEST = 20
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(s: str) -> str:
    s = "".join(ch for ch in s.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", s).split())


def exact_match(pred: str, gold: str) -> float:
    return float(normalize_answer(pred) == normalize_answer(gold))


def f1_score(pred: str, gold: str) -> float:
    p, g = normalize_answer(pred).split(), normalize_answer(gold).split()
    common = Counter(p) & Counter(g)
    same = sum(common.values())
    if not p or not g:
        return float(p == g)
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def squad_scores(preds: list[str], golds: list[list[str]]) -> dict:
    em = [max(exact_match(p, g) for g in gs) for p, gs in zip(preds, golds, strict=True)]
    f1 = [max(f1_score(p, g) for g in gs) for p, gs in zip(preds, golds, strict=True)]
    n = max(len(preds), 1)
    return {"exact_match": 100.0 * sum(em) / n, "f1": 100.0 * sum(f1) / n}


def _answers(value) -> tuple[list[str], list[int]] | None:
    if isinstance(value, dict):
        texts, starts = value.get("text"), value.get("answer_start")
        if not isinstance(texts, list) or not isinstance(starts, list) or len(texts) != len(starts):
            return None
    elif isinstance(value, list) and all(isinstance(a, dict) for a in value):
        texts, starts = [a.get("text") for a in value], [a.get("answer_start") for a in value]
    else:
        return None
    if not texts or not all(isinstance(t, str) and t for t in texts) \
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in starts):
        return None
    return texts, starts


def _col(table: Table, wanted: str | None, name: str, flag: str) -> str:
    col = wanted or next((c for c in table.columns if c.lower() == name), None)
    if col is None or col not in table.columns:
        raise UserError(f"{table.path}: no '{wanted or name}' column; columns: {', '.join(table.columns)}. "
                        f"Name it with {flag}.")
    return col


class ExtractOptions(TaskOptions):
    max_answer_length: int = Field(30, ge=1, le=32_768)
    doc_stride: int = Field(128, ge=0, le=32_768)


@register
class ExtractTask(Task):
    name = "extract"
    primary_metric = "f1"
    level = "token"
    label_space = "spans"
    min_labels = 0  # answers are spans of the context, not labels
    padding_side = "right"  # start/end targets are token positions counted from the left
    detect_order = 20
    Options: ClassVar[type[TaskOptions]] = ExtractOptions
    # Small QA sets need more passes and a larger step than the usual 2 epochs at 5e-5.
    defaults = {"full": {"epochs": 6, "lr": 1.5e-4, "batch_size": 16}}

    def __init__(self, labels=None, label_type="str", class_weights=None, pair_mode="cross", max_answer_length=30,
                 doc_stride=128, **options):
        super().__init__(labels, label_type, class_weights, "cross", **options)
        self.max_answer_length = int(max_answer_length)
        self.doc_stride = int(doc_stride)

    # ---- data -------------------------------------------------------------------------------
    @classmethod
    def claims(cls, table, hints: ColumnHints) -> str | None:
        question, context = named_column(table, None, ("question",)), named_column(table, None, ("context",))
        if question and context and not hints.label:
            return f"columns '{question}' and '{context}'"
        return None

    def infer_columns(self, table, text=None, pair=None, label=None, need_label=True) -> Columns:
        return Columns(_col(table, text, "question", "--text-column"), _col(table, pair, "context", "--text-pair-column"),
                       _col(table, label, "answers", "--label-column") if need_label else None)

    def read(self, table: Table, columns: Columns, need_label: bool = True) -> Examples:
        questions, contexts, answers, ids, bad, mismatch = [], [], [], [], [], []
        for i, rec in enumerate(table.records):
            q, c = rec.get(columns.text), rec.get(columns.pair)
            if not isinstance(q, str) or not q.strip() or not isinstance(c, str) or not c.strip():
                bad.append(i)
                continue
            questions.append(q)
            contexts.append(c)
            ids.append(rec.get("id", i))
            if need_label:
                a = _answers(rec.get(columns.label))
                if a is None:
                    raise UserError(f"{table.where(i)}, column '{columns.label}': expected answers as "
                                    "{\"text\": [...], \"answer_start\": [...]} (or a list of {text, answer_start}) "
                                    "with at least one non-empty answer.")
                for t, s in zip(*a, strict=True):
                    if c[s:s + len(t)] != t:
                        mismatch.append((i, t, s, c[s:s + len(t)]))
                answers.append({"text": a[0], "answer_start": a[1]})
        ex0 = Examples([], None, None, table, list(range(len(table.records))))
        if bad:
            raise UserError(rows_message(ex0, bad, f"with an empty or missing '{columns.text}' or '{columns.pair}'") +
                            ". Every question needs a question and a context string.")
        if mismatch:
            i, t, s, found = mismatch[0]
            raise UserError(f"{table.where(i)}: the answer '{t[:60]}' does not start at character {s} of the context "
                            f"(found '{found[:60]}' there; {len(mismatch)} such answer(s)). Check answer_start.")
        return Examples(questions, contexts, answers if need_label else None, table,
                        list(range(len(table.records))), ids=ids)

    def inputs(self, texts: list[str], pairs: list[str] | None) -> Examples:
        if pairs is None:
            raise UserError("extractive QA needs a context for every question (give contexts as text pairs).")
        return Examples(list(texts), list(pairs), None, ids=list(range(len(texts))))

    # ---- model ------------------------------------------------------------------------------
    def build_head(self, hidden_size: int, dropout: float = 0.1):
        from .heads import token_head  # lazy: torch (~2 s), only when a model is built

        return token_head(hidden_size, 2, dropout)

    def prepare(self, encoder, ex: Examples) -> Prepared:
        import torch

        tok = encoder.tokenizer
        if not getattr(tok, "is_fast", False):
            raise UserError(f"{encoder.source}: extractive QA needs a fast tokenizer (character offsets).")
        stride = min(self.doc_stride, encoder.max_length // 2)
        try:
            enc = tok(ex.texts, ex.pairs, truncation="only_second", max_length=encoder.max_length, stride=stride,
                      return_overflowing_tokens=True, return_offsets_mapping=True)
        except Exception as e:  # the tokenizer refuses a question that leaves no room for context
            raise UserError(f"could not fit question and context into --max-length {encoder.max_length} ({e}); "
                            "shorten the questions or raise --max-length.") from None
        sample = list(enc["overflow_to_sample_mapping"])
        offsets = []
        for f in range(len(sample)):
            seq = enc.sequence_ids(f)
            offsets.append([o if s == 1 else None for o, s in zip(enc["offset_mapping"][f], seq, strict=True)])
        tt = enc.get("token_type_ids") if "token_type_ids" in tok.model_input_names else None
        tokens = Tokenized(enc["input_ids"], tt, 0)
        targets = None
        if ex.labels is not None:
            targets = torch.zeros((len(sample), 2), dtype=torch.long)
            for f, i in enumerate(sample):
                a0, a1 = ex.labels[i]["answer_start"][0], ex.labels[i]["answer_start"][0] + len(ex.labels[i]["text"][0])
                pos = [k for k, o in enumerate(offsets[f]) if o is not None and o[0] < a1 and o[1] > a0]
                ctx_pos = [o for o in offsets[f] if o is not None]
                if pos and ctx_pos[0][0] <= a0 and ctx_pos[-1][1] >= a1:
                    targets[f, 0], targets[f, 1] = pos[0], pos[-1]
        return Prepared(tokens, targets, {"sample": sample, "offsets": offsets})

    def loss(self, logits, targets):
        import torch.nn.functional as F

        return 0.5 * (F.cross_entropy(logits[..., 0], targets[:, 0]) + F.cross_entropy(logits[..., 1], targets[:, 1]))

    # ---- decoding and evaluation ------------------------------------------------------------
    def best_spans(self, outputs, prepared: Prepared, ex: Examples) -> list[dict]:
        best: list[dict] = [{"answer": "", "start": 0, "end": 0, "score": -np.inf} for _ in range(len(ex))]
        for f, (logits, offsets) in enumerate(zip(outputs, prepared.info["offsets"], strict=True)):
            i = prepared.info["sample"][f]
            ctx = np.array([o is not None for o in offsets[:len(logits)]])
            if not ctx.any():
                continue
            start, end = np.where(ctx, logits[:, 0], -np.inf), np.where(ctx, logits[:, 1], -np.inf)
            starts = np.argsort(-start)[:N_BEST]
            ends = np.argsort(-end)[:N_BEST]
            for s in starts:
                if not ctx[s]:
                    continue
                for e in ends:
                    if not ctx[e] or e < s or e - s + 1 > self.max_answer_length:
                        continue
                    score = float(start[s] + end[e])
                    if score > best[i]["score"]:
                        a, b = offsets[s][0], offsets[e][1]
                        best[i] = {"answer": ex.pairs[i][a:b], "start": int(a), "end": int(b), "score": score}
        for b in best:
            if not np.isfinite(b["score"]):
                b["score"] = None
        return best

    def evaluate_outputs(self, outputs, prepared: Prepared, ex: Examples) -> dict:
        spans = self.best_spans(outputs, prepared, ex)
        return squad_scores([s["answer"] for s in spans], [a["text"] for a in ex.labels])

    def score_outputs(self, outputs, prepared: Prepared, ex: Examples) -> float:
        return float(self.evaluate_outputs(outputs, prepared, ex)["f1"])

    def decode_outputs(self, outputs, prepared: Prepared, ex: Examples) -> list[dict]:
        return self.best_spans(outputs, prepared, ex)

    def describe(self, p: dict) -> str:
        return f"{p['answer']!r} (characters {p['start']}-{p['end']})"

    def summary(self, m: dict) -> str:
        return f"F1 {m['f1']:.2f}  exact match {m['exact_match']:.2f}"

    def config(self) -> dict:
        return {**super().config(), "task_options": {**self.options, "max_answer_length": self.max_answer_length,
                                                      "doc_stride": self.doc_stride}}
