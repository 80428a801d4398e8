"""The scores the task benchmark rows compute themselves, against hand-computed values."""

import json
import random

import numpy as np
import pytest

from bench.scorers import chunk_scores, chunks, exact_match, normalize_answer, squad_scores, token_f1
from bench.task_data import split_titles, squad_by_title
from bench.trainer_qa import best_answers


def test_chunks_follow_conlleval_boundaries():
    assert chunks(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 1), ("LOC", 3, 3)]
    # a type change inside a run of I- tags closes one chunk and opens another
    assert chunks(["B-PER", "I-LOC", "I-LOC", "O"]) == [("PER", 0, 0), ("LOC", 1, 2)]
    # a stray I- opens a chunk; B- after it opens a new one even with the same type
    assert chunks(["I-ORG", "I-ORG", "B-ORG"]) == [("ORG", 0, 1), ("ORG", 2, 2)]
    # a chunk running to the end of the sentence is closed there
    assert chunks(["O", "B-MISC", "I-MISC"]) == [("MISC", 1, 2)]
    # BIOES tags: E closes, S is a one-token chunk
    assert chunks(["B-LOC", "E-LOC", "S-PER", "I-PER"]) == [("LOC", 0, 1), ("PER", 2, 2), ("PER", 3, 3)]
    assert chunks(["O", "O"]) == []


def test_chunk_scores_hand_computed():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "I-ORG"], ["O", "B-MISC"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["I-ORG", "I-ORG", "I-ORG"], ["B-MISC", "B-MISC"]]
    # gold: PER 0-1, LOC 3, ORG 0-2, MISC 1 (4); predicted: PER 0, LOC 3, ORG 0-2, MISC 0, MISC 1 (5)
    # correct: LOC, ORG, MISC 1 (3): P 3/5, R 3/4, F1 2/3
    s = chunk_scores(gold, pred)
    assert (s["n_gold"], s["n_pred"], s["n_correct"]) == (4, 5, 3)
    assert s["precision"] == pytest.approx(0.6)
    assert s["recall"] == pytest.approx(0.75)
    assert s["f1"] == pytest.approx(2 / 3)
    assert s["per_type"]["PER"]["f1"] == 0.0  # a partial span earns nothing
    assert s["per_type"]["LOC"]["f1"] == pytest.approx(1.0)
    assert s["per_type"]["MISC"]["precision"] == pytest.approx(0.5)
    assert s["per_type"]["MISC"]["f1"] == pytest.approx(2 / 3)


def test_chunks_never_cross_sentences():
    # the PER at the end of sentence 1 and the I-PER opening sentence 2 are two entities
    s = chunk_scores([["O", "B-PER"], ["I-PER", "O"]], [["O", "B-PER"], ["B-PER", "O"]])
    assert (s["n_gold"], s["n_pred"], s["n_correct"]) == (2, 2, 2)


def test_chunk_scores_rejects_misaligned_input():
    with pytest.raises(ValueError, match="sentence 0"):
        chunk_scores([["O", "B-PER"]], [["O"]])


def test_squad_normalisation_and_scores_hand_computed():
    assert normalize_answer("The  Cat, sat!") == "cat sat"
    assert normalize_answer("an apple a day") == "apple day"
    assert exact_match("the Denver Broncos", "Denver Broncos") == 1.0
    # predicted {denver, broncos, won} vs gold {denver, broncos}: P 2/3, R 1, F1 0.8
    assert token_f1("Denver Broncos won", "the Denver Broncos") == pytest.approx(0.8)
    assert token_f1("Carolina", "Panthers") == 0.0
    preds = {"q1": "Denver Broncos won", "q2": "Carolina", "q3": "an apple"}
    golds = {"q1": ["the Denver Broncos", "Broncos"], "q2": ["Panthers"], "q3": ["Apple."], "q4": ["x"]}
    s = squad_scores(preds, golds)
    # q1: EM 0, F1 max(0.8, 0.5); q2: 0, 0; q3: 1, 1; q4 unanswered: 0, 0
    assert s["exact_match"] == pytest.approx(100 * 1 / 4)
    assert s["f1"] == pytest.approx(100 * 1.8 / 4)


def test_best_answer_across_windows_respects_span_rules():
    rows = [{"id": "a", "context": "hello big world"}]
    offsets = [None, (0, 5), (6, 9), (10, 15)]  # position 0 is [CLS], not context
    w1_start = np.array([9.0, 0.0, 1.0, 0.0])   # [CLS] is highest but is no context token
    w1_end = np.array([9.0, 0.0, 0.5, 1.0])     # best legal span: "big world" (1 + 1 = 2)
    w2_start = np.array([0.0, 0.0, 0.0, 5.0])   # window 2 prefers end < start, which is illegal,
    w2_end = np.array([0.0, 4.0, 0.0, 0.5])     # so its best legal span is "world" (5 + 0.5 = 5.5)
    meta = [{"id": "a", "offsets": offsets}, {"id": "a", "offsets": offsets}]
    out = best_answers(rows, meta, np.stack([w1_start, w2_start]), np.stack([w1_end, w2_end]))
    assert out == {"a": "world"}
    # a maximum answer length of 1 token rules out "big world": "big" (1 + 0.5) beats "world" (0 + 1)
    out = best_answers(rows, meta[:1], w1_start[None], w1_end[None], max_answer_length=1)
    assert out == {"a": "big"}
    assert best_answers(rows, meta[:1], w1_start[None], w1_end[None]) == {"a": "big world"}


def test_squad_split_by_title(tmp_path):
    titles = [f"t{i}" for i in range(10)]
    train, test = split_titles(list(reversed(titles)) * 2)
    order = sorted(titles)
    random.Random(0).shuffle(order)
    assert (train, test) == (order[:8], order[8:])
    src = tmp_path / "qa.jsonl"
    rows = [{"id": f"{t}-{k}", "title": t, "question": "q", "context": "c",
             "answers": {"text": ["c"], "answer_start": [0]}} for t in titles for k in range(3)]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    info = squad_by_title(src, tmp_path / "split")
    assert info == {"train_titles": 8, "test_titles": 2, "train_questions": 24, "test_questions": 6}
    seen = {s: {json.loads(line)["title"] for line in (tmp_path / "split" / f"{s}.jsonl").open()}
            for s in ("train", "test")}
    assert seen == {"train": set(order[:8]), "test": set(order[8:])}


def test_reuse_carries_over_only_the_variants_not_run(tmp_path):
    from bench.cli import carried_over, selected

    assert selected("enctune_rte", ["enctune_*"]) and not selected("trainer_rte", ["enctune_*"])
    assert selected("trainer_rte", None)
    earlier = {"command": "python -m bench --rows rte", "started": "then", "rows": {"rte": {"cases": [
        {"rep": 1, "point": "", "variant": "enctune_rte", "args": {}, "result": {"status": "failed"}},
        {"rep": 1, "point": "", "variant": "trainer_rte", "args": {}, "result": {"status": "ok"}}]}}}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(earlier))
    notes: list[str] = []
    cases = carried_over(path, "rte", ["enctune_*"], notes)
    assert [c["variant"] for c in cases] == ["trainer_rte"]
    assert cases[0]["carried_over_from"] == str(path)
    assert len(notes) == 1 and "trainer_rte: carried over" in notes[0]
    assert carried_over(path, "conll", ["enctune_*"], notes) == []
