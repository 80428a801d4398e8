"""Scores the task rows compute themselves, so that enctune and its peers are scored alike.

- ``chunk_scores``: entity-level precision / recall / F1 over BIO (or BIOES) tag sequences,
  the way the CoNLL-2000/2003 ``conlleval`` script counts them: a chunk is a maximal run of
  tags of one type, opened by ``B-``/``S-`` (or by an ``I-``/``E-`` whose type differs from the
  tag before it) and closed when the next tag cannot continue it; a predicted chunk is
  correct only when a gold chunk has exactly the same start, end and type. Sentence ends
  close every chunk.
- ``squad_scores``: exact match and token F1 with the official SQuAD v1.1 answer
  normalisation (lower-case, drop punctuation, drop the articles a/an/the, collapse
  white-space), the best over the gold answers of each question, averaged and given in 0-100.

Pure Python: imports nothing heavy.
"""

from __future__ import annotations

import re
import string
from collections import Counter


def _split(tag: str) -> tuple[str, str]:
    """``"B-PER"`` -> ``("B", "PER")``; ``"O"`` -> ``("O", "")``; a bare ``"PER"`` counts as inside."""
    if tag in ("O", ""):
        return "O", ""
    if len(tag) > 1 and tag[1] in "-_" and tag[0] in "BIESO":
        return tag[0], tag[2:]
    return "I", tag


def _ends(prev: str, prev_type: str, tag: str, typ: str) -> bool:
    """Does a chunk of ``prev``/``prev_type`` end before ``tag``/``typ``?"""
    if prev == "O":
        return False
    if prev in "ES":  # an end or single tag closes its chunk
        return True
    if tag in "BSO":
        return True
    return prev_type != typ  # I-/E- of another type


def _starts(prev: str, prev_type: str, tag: str, typ: str) -> bool:
    """Does a chunk start at ``tag``/``typ``, given the tag before it?"""
    if tag == "O":
        return False
    if tag in "BS":
        return True
    # an I-/E- starts a chunk when nothing of its type can be continued (after O, an end, or another type)
    return prev == "O" or prev in "ES" or prev_type != typ


def chunks(tags: list[str]) -> list[tuple[str, int, int]]:
    """The chunks of one sentence as ``(type, start, end)``, end inclusive, in order."""
    out: list[tuple[str, int, int]] = []
    prev, prev_type, start = "O", "", None
    for i, raw in enumerate([*tags, "O"]):  # a trailing O closes the last chunk
        tag, typ = _split(raw)
        if start is not None and _ends(prev, prev_type, tag, typ):
            out.append((prev_type, start, i - 1))
            start = None
        if _starts(prev, prev_type, tag, typ):
            start = i
        prev, prev_type = tag, typ
    return out


def _prf(correct: int, n_pred: int, n_gold: int) -> dict:
    p = correct / n_pred if n_pred else 0.0
    r = correct / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "n_gold": n_gold, "n_pred": n_pred, "n_correct": correct}


def chunk_scores(gold: list[list[str]], pred: list[list[str]]) -> dict:
    """Overall and per-type precision/recall/F1 (0-1) of predicted chunks against gold chunks."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    g_set, p_set = set(), set()
    for s, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sentence {s}: {len(g)} gold tags but {len(p)} predicted")
        g_set.update((s, *c) for c in chunks(g))
        p_set.update((s, *c) for c in chunks(p))
    hit = g_set & p_set
    out = _prf(len(hit), len(p_set), len(g_set))
    types = sorted({c[1] for c in g_set | p_set})
    out["per_type"] = {t: _prf(sum(c[1] == t for c in hit), sum(c[1] == t for c in p_set),
                               sum(c[1] == t for c in g_set)) for t in types}
    return out


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalisation: lower-case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def token_f1(prediction: str, truth: str) -> float:
    p, t = normalize_answer(prediction).split(), normalize_answer(truth).split()
    same = sum((Counter(p) & Counter(t)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(t)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: dict[str, str], answers: dict[str, list[str]]) -> dict:
    """``{"exact_match", "f1"}`` in 0-100 over every question in ``answers`` (a missing prediction scores 0)."""
    if not answers:
        raise ValueError("no questions to score")
    em = f1 = 0.0
    for qid, golds in answers.items():
        pred = predictions.get(qid, "")
        em += max(exact_match(pred, g) for g in golds)
        f1 += max(token_f1(pred, g) for g in golds)
    n = len(answers)
    return {"exact_match": 100.0 * em / n, "f1": 100.0 * f1 / n, "n": n}
