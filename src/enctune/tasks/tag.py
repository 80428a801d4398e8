"""``tag``: one label per word (named entities and the like, BIO tags).

Data: JSONL/JSON/Parquet rows ``{"tokens": [...], "tags": [...]}`` or CoNLL column files
(word first, tag last, blank line between sentences). Raw text is accepted for prediction:
it is split into words (runs of letters/digits, or single other symbols) with their
character offsets.

Words are tokenised with the tokenizer's word alignment; the first sub-token of each word
carries the word's tag and the others are ignored by the loss (-100), so a word's
prediction is read at its first sub-token. Head: dropout + linear on every token's hidden
state, (B, T, H) -> (B, T, C); loss: cross-entropy over labelled tokens.

Metrics, as CoNLL's scorer computes them: entities are maximal chunks of B-X / I-X tags (an
I-X after O or after another type starts a new chunk; BIOES S-/E- are read as B-/I-; a
bare tag X as I-X); an entity counts when its type and its exact word span match.
Precision, recall and F1 overall (micro, primary: ``f1``) and per type, plus word accuracy.
Words cut off by ``max_length`` are predicted as O (and counted in ``truncated_texts``).
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from ..data import TEXT_NAMES, Columns, Examples, Table, pick_column
from ..encoders.tokens import Tokenized
from ..errors import UserError
from .base import ColumnHints, Prepared, Task, named_column, rows_message
from .registry import register

IGNORE = -100
WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)
TOKEN_NAMES = ("tokens", "words")
TAG_NAMES = ("tags", "ner_tags", "labels", "label")


def split_words(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    spans = [(m.start(), m.end()) for m in WORD.finditer(text)]
    return [text[a:b] for a, b in spans], spans


def _parse(tag: str) -> tuple[str, str | None]:
    """(prefix, type): prefix O, B or I."""
    if tag == "O" or not tag:
        return "O", None
    if len(tag) > 2 and tag[1] in "-_" and tag[0] in "BIESLU":
        prefix, kind = tag[0], tag[2:]
        return ("B" if prefix in "SU" else "I" if prefix in "EL" else prefix), kind
    return "I", tag


def entities(tags: list[str]) -> list[tuple[str, int, int]]:
    """(type, first word, last word + 1) of every chunk, CoNLL style."""
    spans, start, kind = [], 0, None
    for i, tag in enumerate([*tags, "O"]):
        prefix, k = _parse(tag)
        begins = prefix == "B" or (prefix == "I" and k != kind)
        if kind is not None and (prefix == "O" or begins):
            spans.append((kind, start, i))
            kind = None
        if prefix != "O" and kind is None:
            start, kind = i, k
    return spans


def prf(tp: int, n_pred: int, n_gold: int) -> dict:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def entity_scores(gold: list[list[str]], pred: list[list[str]]) -> dict:
    tp, n_pred, n_gold = Counter(), Counter(), Counter()
    correct = total = 0
    for g, p in zip(gold, pred, strict=True):
        ge, pe = set(entities(g)), set(entities(p))
        for e in pe:
            n_pred[e[0]] += 1
        for e in ge:
            n_gold[e[0]] += 1
        for e in ge & pe:
            tp[e[0]] += 1
        correct += sum(a == b for a, b in zip(g, p, strict=True))
        total += len(g)
    overall = prf(sum(tp.values()), sum(n_pred.values()), sum(n_gold.values()))
    per = {k: {**prf(tp[k], n_pred[k], n_gold[k]), "support": n_gold[k]} for k in sorted(set(n_gold) | set(n_pred))}
    return {**overall, "word_accuracy": correct / total if total else 0.0, "per_type": per,
            "entities_gold": sum(n_gold.values()), "entities_predicted": sum(n_pred.values())}


def _col(table: Table, wanted: str | None, names: tuple[str, ...], flag: str, what: str) -> str:
    if wanted is not None:
        if wanted not in table.columns:
            raise UserError(f"{table.path}: no column '{wanted}' (given by {flag}). Columns: {', '.join(table.columns)}.")
        return wanted
    lowered = {c.lower(): c for c in table.columns}
    for n in names:
        if n in lowered:
            return lowered[n]
    raise UserError(f"{table.path}: could not find the {what} column (looked for {', '.join(names)}); "
                    f"columns: {', '.join(table.columns)}. Name it with {flag}.")


@register
class TagTask(Task):
    name = "tag"
    primary_metric = "f1"
    level = "token"
    label_space = "tags"
    padding_side = "right"  # per-token targets are laid out from the left
    detect_order = 10
    defaults = {"full": {"epochs": 3, "lr": 1e-4, "batch_size": 32}}

    # ---- data -------------------------------------------------------------------------------
    @classmethod
    def claims(cls, table, hints: ColumnHints) -> str | None:
        tokens, tags = named_column(table, None, TOKEN_NAMES), named_column(table, None, TAG_NAMES)
        if tokens and tags and all(isinstance(r.get(tokens), list) for r in table.records[:20]):
            return f"columns '{tokens}' and '{tags}' hold lists of words and tags"
        return None

    def infer_columns(self, table, text=None, pair=None, label=None, need_label=True) -> Columns:
        lowered = {c.lower() for c in table.columns}
        if not need_label and text is None and not (set(TOKEN_NAMES) & lowered):
            return Columns(pick_column(table.columns, None, TEXT_NAMES, "text", "--text-column", table.path),
                           None, None)
        words = _col(table, text, TOKEN_NAMES, "--text-column", "words (tokens)")
        tags = _col(table, label, TAG_NAMES, "--label-column", "tags") if need_label else None
        return Columns(words, None, tags)

    def read(self, table: Table, columns: Columns, need_label: bool = True) -> Examples:
        words, labels, bad_words, ragged, bad_tags = [], [] if need_label else None, [], [], []
        raw_text = None
        for i, rec in enumerate(table.records):
            w = rec.get(columns.text)
            if isinstance(w, str) and not need_label:  # raw text to predict on
                raw_text = raw_text if raw_text is not None else [None] * len(table.records)
                raw_text[i] = w
                w = split_words(w)[0]
            if not isinstance(w, list) or not w or not all(isinstance(x, str) and x.strip() for x in w):
                bad_words.append(i)
                continue
            words.append(w)
            if labels is not None:
                t = rec.get(columns.label)
                if not isinstance(t, list) or not all(isinstance(x, str) and x.strip() for x in t):
                    bad_tags.append(i)
                elif len(t) != len(w):
                    ragged.append((i, len(w), len(t)))
                labels.append(t)
        ex0 = Examples([], None, None, table, list(range(len(table.records))))
        if bad_words:
            raise UserError(rows_message(ex0, bad_words, f"whose '{columns.text}' is not a non-empty list of words") +
                            ". Expected a JSON list of strings, one per word.")
        if bad_tags:
            raise UserError(rows_message(ex0, bad_tags, f"whose '{columns.label}' is not a list of tag strings") +
                            ". Expected one tag (such as O, B-PER, I-PER) per word.")
        if ragged:
            i, nw, nt = ragged[0]
            raise UserError(f"{table.where(i)}: {nw} word(s) in '{columns.text}' but {nt} tag(s) in '{columns.label}' "
                            f"({len(ragged)} such row(s)); every word needs exactly one tag.")
        texts = [raw_text[i] if raw_text and raw_text[i] is not None else " ".join(w) for i, w in enumerate(words)]
        return Examples(texts, None, labels, table, list(range(len(table.records))), words=words)

    def fit(self, train: Examples, column: str | None) -> None:
        tags = sorted({t for row in train.labels for t in row})
        self.labels = sorted(tags, key=lambda t: (t != "O", _parse(t)[1] or "", t))
        if len(self.labels) < 2:
            raise UserError(f"{train.where(0).rsplit(', ', 1)[0]}: every word has the tag '{self.labels[0]}'; "
                            "tagging needs at least two tags.")

    def check(self, ex: Examples, column: str | None) -> None:
        known = set(self.labels)
        for i, row in enumerate(ex.labels):
            unseen = [t for t in row if t not in known]
            if unseen:
                raise UserError(f"{ex.where(i)}, column '{column}': tag '{unseen[0]}' never appears in train. "
                                f"Train tags: {', '.join(self.labels)}.")

    def inputs(self, texts: list[str], pairs: list[str] | None) -> Examples:
        words = [split_words(t)[0] for t in texts]
        empty = [i for i, w in enumerate(words) if not w]
        if empty:
            raise UserError(f"text {empty[0] + 1}: no words to tag.")
        return Examples(list(texts), None, None, words=words)

    # ---- model ------------------------------------------------------------------------------
    def build_head(self, hidden_size: int, dropout: float = 0.1):
        from .heads import token_head  # lazy: torch (~2 s), only when a model is built

        return token_head(hidden_size, len(self.labels), dropout)

    def prepare(self, encoder, ex: Examples) -> Prepared:
        tok = encoder.tokenizer
        if not getattr(tok, "is_fast", False):
            raise UserError(f"{encoder.source}: tagging needs a fast tokenizer (word alignment).")
        enc = tok(ex.words, is_split_into_words=True, truncation=True, max_length=encoder.max_length)
        word_ids = [enc.word_ids(i) for i in range(len(ex.words))]
        cut = sum(1 for w, ids in zip(ex.words, word_ids, strict=True)
                  if max((x for x in ids if x is not None), default=-1) < len(w) - 1)
        tt = enc.get("token_type_ids") if "token_type_ids" in tok.model_input_names else None
        tokens = Tokenized(enc["input_ids"], tt, cut)
        targets = None
        if ex.labels is not None:
            index = {t: k for k, t in enumerate(self.labels)}
            targets = []
            for ids, tags in zip(word_ids, ex.labels, strict=True):
                row, prev = [], None
                for w in ids:
                    row.append(index[tags[w]] if w is not None and w != prev else IGNORE)
                    prev = w
                targets.append(row)
        return Prepared(tokens, targets, {"word_ids": word_ids})

    def collate_targets(self, targets, idx):
        import torch

        rows = [targets[i] for i in idx]
        out = torch.full((len(rows), max(len(r) for r in rows)), IGNORE, dtype=torch.long)
        for r, row in enumerate(rows):
            out[r, :len(row)] = torch.tensor(row)
        return out

    def loss(self, logits, targets):
        import torch.nn.functional as F

        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE)

    # ---- evaluation -------------------------------------------------------------------------
    def word_predictions(self, outputs, prepared: Prepared, ex: Examples) -> tuple[list[list[str]], list[list[float]]]:
        tags, confidence = [], []
        for logits, ids, words in zip(outputs, prepared.info["word_ids"], ex.words, strict=True):
            probs = np.exp(logits - logits.max(-1, keepdims=True))
            probs /= probs.sum(-1, keepdims=True)
            row, conf, prev = ["O"] * len(words), [1.0] * len(words), None
            for pos, w in enumerate(ids):
                if w is not None and w != prev:
                    k = int(probs[pos].argmax())
                    row[w], conf[w] = self.labels[k], float(probs[pos, k])
                prev = w
            tags.append(row)
            confidence.append(conf)
        return tags, confidence

    def evaluate_outputs(self, outputs, prepared: Prepared, ex: Examples) -> dict:
        return entity_scores(ex.labels, self.word_predictions(outputs, prepared, ex)[0])

    def score_outputs(self, outputs, prepared: Prepared, ex: Examples) -> float:
        return float(self.evaluate_outputs(outputs, prepared, ex)["f1"])

    def decode_outputs(self, outputs, prepared: Prepared, ex: Examples) -> list[dict]:
        tags, conf = self.word_predictions(outputs, prepared, ex)
        out = []
        for text, words, row, c in zip(ex.texts, ex.words, tags, conf, strict=True):
            offsets, pos = [], 0
            for w in words:  # each word's place in the text (raw text, or the words joined by spaces)
                a = text.find(w, pos)
                a = pos if a < 0 else a
                offsets.append((a, a + len(w)))
                pos = a + len(w)
            ents = [{"type": k, "text": text[offsets[a][0]:offsets[b - 1][1]], "start": offsets[a][0],
                     "end": offsets[b - 1][1], "score": float(np.mean(c[a:b]))} for k, a, b in entities(row)]
            out.append({"entities": ents, "words": words, "tags": row})
        return out

    def describe(self, p: dict) -> str:
        return "  ".join(f"[{e['text']}]({e['type']})" for e in p["entities"]) or "(no entity)"

    def summary(self, m: dict) -> str:
        return f"entity F1 {m['f1']:.4f}  precision {m['precision']:.4f}  recall {m['recall']:.4f}"
