"""Every task kind end to end on tiny random encoders, the metric implementations against
hand-computed values, task detection from the data's shape, and bad input per format."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

import enctune
from enctune.cli import main
from enctune.errors import UserError
from enctune.tasks.extract import exact_match, f1_score, normalize_answer, squad_scores
from enctune.tasks.multilabel import MultilabelTask
from enctune.tasks.regress import pearson, spearman
from enctune.tasks.tag import entities, entity_scores

from .conftest import FILLER, NEGATIVE, POSITIVE, write_jsonl

# fp32: the thresholds below hold on every CPU; bf16 rounds differently on AVX-512 BF16 and on AMX (a tiny
# GPT-2 regression scored 0.594 test Spearman under bf16 on an EPYC, above 0.6 on a Xeon)
FULL = {"strategy": "full", "epochs": 10, "lr": 3e-3, "batch_size": 8, "patience": 50, "precision": "fp32"}


# ---- toy data sets, learnable from word identity ------------------------------------------
def tag_rows(n, seed):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words, tags = [], []
        for _ in range(rng.randint(4, 8)):
            kind = rng.random()
            if kind < 0.2:
                words.append(rng.choice(POSITIVE))
                tags.append("B-POS")
            elif kind < 0.35:
                words.append(rng.choice(NEGATIVE))
                tags.append("B-NEG")
            else:
                words.append(rng.choice(FILLER))
                tags.append("O")
        rows.append({"tokens": words, "tags": tags})
    return rows


def qa_rows(n, seed):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        before = " ".join(rng.choices(FILLER, k=rng.randint(1, 6)))
        answer = rng.choice(POSITIVE)
        after = " ".join(rng.choices(FILLER, k=rng.randint(1, 6)))
        context = f"{before} {answer} {after}"
        rows.append({"id": f"q{i}", "question": "the plot", "context": context,
                     "answers": {"text": [answer], "answer_start": [len(before) + 1]}})
    return rows


def multilabel_rows(n, seed):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words, labels = rng.sample(FILLER, 2), set()
        if rng.random() < 0.5:
            words += rng.sample(POSITIVE, 2)
            labels.add("praise")
        if rng.random() < 0.5 or not labels:
            words += rng.sample(NEGATIVE, 2)
            labels.add("complaint")
        if rng.random() < 0.4:
            words += rng.sample(list("abcdefghij"), 2)
            labels.add("letters")
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "labels": sorted(labels)})
    return rows


def regress_rows(n, seed, pairs=False):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        k = rng.randint(0, 4)
        words = rng.sample(POSITIVE, k) + rng.sample(FILLER, 5 - k)
        rng.shuffle(words)
        row = {"text": " ".join(words), "label": k + rng.random() * 0.5}
        if pairs:
            row["text_pair"] = " ".join(rng.sample(POSITIVE, 2) + rng.sample(FILLER, 3))
        rows.append(row)
    return rows


def pair_rows(n, seed):
    """Label: the sentiment of the second text (the first is filler), so only a model that reads the
    pair can learn it."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        b = rng.choice([POSITIVE, NEGATIVE])
        rows.append({"text": " ".join(rng.sample(FILLER, 4)),
                     "text_pair": " ".join(rng.sample(b, 2) + rng.sample(FILLER, 2)),
                     "label": "yes" if b is POSITIVE else "no"})
    return rows


def splits(tmp_path, make, n=(160, 48, 48), **kw):
    d = tmp_path / "data"
    for name, size, seed in zip(("train", "validation", "test"), n, (1, 2, 3), strict=True):
        write_jsonl(d / f"{name}.jsonl", make(size, seed, **kw))
    return d


def roundtrip(run, out, texts, pairs=None):
    """Predictions from the in-memory model and from the reloaded folder agree exactly."""
    before = run.predictor.predict(texts, pairs)
    after = enctune.load(out).predict(texts, pairs)
    assert json.dumps(before, sort_keys=True) == json.dumps(after, sort_keys=True)
    return after


# ---- each task kind: train -> save -> load -> predict ---------------------------------------
def test_classify_text_pairs(tiny_bert_std, tmp_path):
    data = splits(tmp_path, pair_rows)
    run = enctune.train(data=str(data), out=str(tmp_path / "run"), model=str(tiny_bert_std), **FULL)
    assert run.metrics["task"] == "classify"
    meta = json.loads((tmp_path / "run" / "model" / "enctune.json").read_text())
    assert meta["columns"]["pair"] == "text_pair" and meta["pair_mode"] == "cross"
    assert run.metrics["test"]["accuracy"] >= 0.8
    preds = roundtrip(run, tmp_path / "run", ["the film it", "the film it"], ["lovely superb a", "awful dull it"])
    assert {p["label"] for p in preds} <= {"yes", "no"}
    with pytest.raises(UserError, match="pairs"):
        enctune.load(tmp_path / "run").predict(["good"])


def test_multilabel_tunes_thresholds_and_predicts_label_lists(tiny_bert_std, tmp_path):
    data = splits(tmp_path, multilabel_rows)
    run = enctune.train(data=str(data), out=str(tmp_path / "run"), model=str(tiny_bert_std), **FULL)
    m = run.metrics
    assert m["task"] == "multilabel" and "column 'labels' holds lists" in m["task_reason"]
    assert m["test"]["micro_f1"] >= 0.8 and set(m["test"]["per_label"]) == {"complaint", "letters", "praise"}
    thresholds = m["fitted_on_validation"]["thresholds"]
    assert set(thresholds) == {"complaint", "letters", "praise"} and all(0 < t < 1 for t in thresholds.values())
    preds = roundtrip(run, tmp_path / "run", ["good great the film", "bad awful a b"])
    assert all(p["labels"] for p in preds)  # at least one label: every train row had one


@pytest.mark.parametrize("strategy", ["full", "probe"])
def test_regress_restores_units(strategy, tiny_bert_std, tmp_path):
    data = splits(tmp_path, regress_rows)
    kw = FULL if strategy == "full" else {"strategy": "probe", "epochs": 80, "lr": 3e-2, "batch_size": 16,
                                          "patience": 100}
    run = enctune.train(data=str(data), out=str(tmp_path / "run"), model=str(tiny_bert_std), **kw)
    m = run.metrics
    assert m["task"] == "regress" and m["test"]["spearman"] >= 0.6
    preds = roundtrip(run, tmp_path / "run", ["good great fine lovely the", "the film was a movie"])
    # outputs are in the targets' units (0 to 4.5), not standardised ones
    assert preds[0]["value"] > preds[1]["value"] and -1.0 < preds[1]["value"] < 5.5


def test_regress_pairs_are_encoded_apart_with_a_cosine_head(tiny_bert_std, tmp_path):
    data = splits(tmp_path, regress_rows, pairs=True)
    run = enctune.train(data=str(data), out=str(tmp_path / "run"), model=str(tiny_bert_std), **FULL)
    meta = json.loads((tmp_path / "run" / "model" / "enctune.json").read_text())
    assert meta["pair_mode"] == "bi"
    lo, hi = meta["task_options"]["shift"][0], meta["task_options"]["shift"][0] + meta["task_options"]["scale"][0]
    preds = roundtrip(run, tmp_path / "run", ["good great the", "film was it"], ["lovely fine a", "good fine it"])
    for p in preds:  # a cosine in [-1, 1] mapped to the train range
        assert lo - (hi - lo) - 1e-6 <= p["value"] <= hi + 1e-6
    # the probe caches each side's vectors and trains the projection alone
    probe = enctune.train(data=str(data), out=str(tmp_path / "probe"), model=str(tiny_bert_std), strategy="probe",
                          epochs=5)
    assert probe.metrics["costs"]["cache_hits"] == 0 and probe.metrics["costs"]["trainable_params"] == 32 * 32 + 32
    roundtrip(probe, tmp_path / "probe", ["good great the"], ["lovely fine a"])
    # cross mode on request: one input, linear head
    run2 = enctune.train(data=str(data), out=str(tmp_path / "run2"), model=str(tiny_bert_std), pair_mode="cross", **FULL)
    assert json.loads((tmp_path / "run2" / "model" / "enctune.json").read_text())["pair_mode"] == "cross"
    assert run2.metrics["test"]["spearman"] > 0.3


def test_tag_from_conll_files_predicts_entity_spans(tiny_bert_std, tmp_path):
    d = tmp_path / "conll"
    d.mkdir()
    for name, n, seed in (("train", 160, 1), ("validation", 48, 2), ("test", 48, 3)):
        text = "-DOCSTART- -X- O\n\n" + "\n\n".join(
            "\n".join(f"{w} NN {t}" for w, t in zip(r["tokens"], r["tags"], strict=True)) for r in tag_rows(n, seed))
        (d / f"{name}.conll").write_text(text + "\n")
    run = enctune.train(data=str(d), out=str(tmp_path / "run"), model=str(tiny_bert_std), **FULL)
    m = run.metrics
    assert m["task"] == "tag" and m["strategy"] == "full"
    assert m["test"]["f1"] >= 0.8 and set(m["test"]["per_type"]) == {"NEG", "POS"}
    preds = roundtrip(run, tmp_path / "run", ["The film was good , great and bad!"])
    ents = {(e["type"], e["text"]) for e in preds[0]["entities"]}
    assert ("POS", "good") in ents and ("NEG", "bad") in ents
    text = "The film was good , great and bad!"
    for e in preds[0]["entities"]:
        assert text[e["start"]:e["end"]] == e["text"]


def test_tag_jsonl_and_evaluate_cli(tiny_bert_std, tmp_path, capsys):
    data = splits(tmp_path, tag_rows)
    enctune.train(data=str(data), out=str(tmp_path / "run"), model=str(tiny_bert_std), **FULL)
    assert main(["evaluate", str(tmp_path / "run"), "--data", str(data / "test.jsonl"), "--json", "-q"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["task"] == "tag" and m["n"] == 48 and m["f1"] >= 0.8


def test_extract_finds_answer_spans(tiny_bert_std, tmp_path):
    data = splits(tmp_path, qa_rows)
    run = enctune.train(data=str(data), out=str(tmp_path / "run"), model=str(tiny_bert_std), max_length=24,
                        doc_stride=8, **FULL)
    m = run.metrics
    assert m["task"] == "extract" and "question" in m["task_reason"]
    assert m["test"]["f1"] >= 70 and 0 <= m["test"]["exact_match"] <= 100
    ctx = "the film was good great and it was a movie"
    preds = roundtrip(run, tmp_path / "run", ["the plot"], [ctx])
    p = preds[0]
    assert ctx[p["start"]:p["end"]] == p["answer"] and p["answer"]


def test_extract_reads_nested_squad_json(tiny_bert_std, tmp_path):
    def nested(rows):
        return {"version": "1.1", "data": [{"title": "t", "paragraphs": [
            {"context": r["context"], "qas": [{"id": r["id"], "question": r["question"],
                                                "answers": [{"text": r["answers"]["text"][0],
                                                             "answer_start": r["answers"]["answer_start"][0]}]}]}
            for r in rows]}]}

    d = tmp_path / "squad"
    d.mkdir()
    (d / "train.json").write_text(json.dumps(nested(qa_rows(40, 1))))
    (d / "validation.json").write_text(json.dumps(nested(qa_rows(12, 2))))
    run = enctune.train(data=str(d), out=str(tmp_path / "run"), model=str(tiny_bert_std), epochs=1, strategy="full")
    assert run.metrics["task"] == "extract" and run.metrics["data"]["sizes"]["train"] == 40


@pytest.mark.parametrize("make,kw", [(pair_rows, {}), (multilabel_rows, {}), (regress_rows, {})])
def test_decoder_encoders_serve_sequence_tasks(make, kw, tiny_gpt2_std, tmp_path):
    data = splits(tmp_path, make)
    run = enctune.train(data=str(data), out=str(tmp_path / "run"), model=str(tiny_gpt2_std), **FULL, **kw)
    meta = json.loads((tmp_path / "run" / "model" / "enctune.json").read_text())
    assert meta["pooling"] == "last"
    primary = run.metrics["test"][run.metrics["primary_metric"]]
    assert primary >= 0.6
    texts = ["good great the film", "bad awful it"]
    pairs = ["lovely fine a", "bad poor it"] if make is pair_rows else None
    roundtrip(run, tmp_path / "run", texts, pairs)


def test_causal_last_token_pooling_is_padding_side_independent(tiny_gpt2):
    from enctune.encoders import Encoder

    enc = Encoder.load(str(tiny_gpt2))
    assert enc.tokenizer.pad_token is not None
    texts = ["good", "the film was really a very good movie"]
    right = enc.encode(enc.tokenize(texts))[(-1, "last")]
    enc.tokenizer.padding_side = "left"
    left = enc.encode(enc.tokenize(texts))[(-1, "last")]
    alone = np.stack([enc.encode(enc.tokenize([t]))[(-1, "last")][0] for t in texts])
    np.testing.assert_allclose(right, alone, atol=1e-5)
    np.testing.assert_allclose(left, alone, atol=1e-5)


# ---- task detection ---------------------------------------------------------------------------
@pytest.mark.parametrize("rows,expected", [
    (tag_rows(5, 0), "tag"),
    (qa_rows(5, 0), "extract"),
    (multilabel_rows(5, 0), "multilabel"),
    (regress_rows(30, 0), "regress"),
    ([{"text": "a", "label": x} for x in (1, 2, 3, 4, 5) * 5], "classify"),
    ([{"text": "a", "label": "pos"}, {"text": "b", "label": "neg"}], "classify"),
])
def test_task_is_detected_from_the_data_shape(rows, expected, tmp_path):
    from enctune.data.readers import read_table
    from enctune.tasks import detect_task

    assert detect_task(read_table(write_jsonl(tmp_path / "d.jsonl", rows)))[0] == expected


# ---- metrics against hand-computed values ----------------------------------------------------
def test_conll_chunks_and_entity_scores():
    assert entities(["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-ORG"]) == [
        ("PER", 0, 2), ("LOC", 3, 4), ("LOC", 4, 5), ("ORG", 5, 6)]
    assert entities(["I-PER", "I-PER", "O", "I-LOC"]) == [("PER", 0, 2), ("LOC", 3, 4)]  # IOB1: I after O begins
    assert entities(["S-PER", "B-LOC", "E-LOC"]) == [("PER", 0, 1), ("LOC", 1, 3)]
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "B-LOC"]]
    s = entity_scores(gold, pred)
    # predicted 3 (PER, ORG, LOC@1), gold 3 (PER, LOC@0, ORG), correct 2
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3) and s["word_accuracy"] == pytest.approx(4 / 6)
    assert s["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_squad_normalisation_exact_match_and_f1():
    assert normalize_answer("The  Eiffel, Tower!") == "eiffel tower"
    assert exact_match("the Eiffel Tower", "Eiffel tower.") == 1.0
    # pred tokens {in, paris, france}, gold {paris}: precision 1/3, recall 1 -> F1 0.5
    assert f1_score("in Paris, France", "Paris") == pytest.approx(0.5)
    assert f1_score("London", "Paris") == 0.0
    s = squad_scores(["Paris", "in 1889"], [["Paris", "the city of Paris"], ["1889"]])
    assert s["exact_match"] == pytest.approx(50.0)
    assert s["f1"] == pytest.approx(100 * (1.0 + 2 / 3) / 2)  # second: precision 1/2, recall 1 -> 2/3


def test_multilabel_metrics_and_threshold_tuning():
    t = MultilabelTask(["a", "b"], at_least_one=False)
    t.thresholds = np.array([0.5, 0.5])
    logits = np.array([[2.0, -2.0], [2.0, 2.0], [-2.0, -2.0]])
    y = np.array([[1, 0], [1, 0], [0, 1]])
    m = t.metrics(logits, y)
    # predicted: {a}, {a, b}, {} vs gold {a}, {a}, {b}: tp 2, fp 1, fn 1 -> micro F1 2/3
    assert m["micro_f1"] == pytest.approx(2 / 3) and m["exact_match"] == pytest.approx(1 / 3)
    assert m["per_label"]["a"]["f1"] == 1.0 and m["per_label"]["b"]["f1"] == 0.0
    t.at_least_one = True  # the empty third row now gets its most likely label (a tie: the first, a)
    assert t.predict_matrix(logits)[2].tolist() == [True, False]
    # a label whose positives all score low: tuning moves its threshold below them
    probs = np.array([[0.9, 0.2], [0.1, 0.15], [0.8, 0.05]])
    tuned = t.tune_thresholds(np.log(probs / (1 - probs)), np.array([[1, 1], [0, 1], [1, 0]]))
    assert tuned[1] <= 0.15 and tuned[1] > 0.05 and 0.1 < tuned[0] <= 0.8


def test_correlations():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    assert pearson(a, 2 * a + 1) == pytest.approx(1.0)
    assert spearman(a, a ** 3) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    # ranks [1, 2, 3, 4] vs [2, 1, 4, 3]: d^2 = 4 -> 1 - 6*4/(4*15) = 0.6
    assert spearman(a, np.array([2.0, 1.0, 4.0, 3.0])) == pytest.approx(0.6)


# ---- bad input per format, each a clear error naming the row ---------------------------------
def _fails(tiny_bert_std, tmp_path, rows, match, name="train.jsonl", **kw):
    d = tmp_path / "bad"
    write_jsonl(d / name, rows)
    with pytest.raises(UserError, match=match):
        enctune.train(data=str(d / name), out=str(tmp_path / "run"), model=str(tiny_bert_std), **kw)
    assert not (tmp_path / "run").exists()


def test_ragged_tokens_and_tags_name_the_row(tiny_bert_std, tmp_path):
    rows = tag_rows(10, 0)
    rows[3]["tags"] = rows[3]["tags"][:-1]
    _fails(tiny_bert_std, tmp_path, rows, r"train.jsonl, line 4: \d+ word\(s\) in 'tokens' but \d+ tag\(s\)")


def test_answer_offsets_that_miss_the_context_name_the_row(tiny_bert_std, tmp_path):
    rows = qa_rows(10, 0)
    rows[5]["answers"]["answer_start"] = [0]
    _fails(tiny_bert_std, tmp_path, rows, r"line 6: the answer '.*' does not start at character 0")


def test_non_numeric_regression_target_names_the_row(tiny_bert_std, tmp_path):
    rows = regress_rows(30, 0)
    rows[7]["label"] = "high"
    _fails(tiny_bert_std, tmp_path, rows, r"line 8; found: 'high'\). Expected a number", task="regress")


def test_empty_label_list_names_the_row(tiny_bert_std, tmp_path):
    rows = multilabel_rows(20, 0)
    rows[2]["labels"] = []
    _fails(tiny_bert_std, tmp_path, rows, r"line 3; found: \[\]\). Expected a non-empty list of labels")


def test_conll_line_with_one_column_is_named(tiny_bert_std, tmp_path):
    d = tmp_path / "c"
    d.mkdir()
    (d / "train.conll").write_text("good B-POS\nfilm O\n\nlonely\n")
    with pytest.raises(UserError, match=r"train.conll, line 4: one column"):
        enctune.train(data=str(d / "train.conll"), out=str(tmp_path / "run"), model=str(tiny_bert_std))


def test_probe_refuses_token_tasks(tiny_bert_std, tmp_path):
    data = splits(tmp_path, tag_rows, n=(20, 8, 8))
    with pytest.raises(UserError, match="needs a vector per token"):
        enctune.train(data=str(data), out=str(tmp_path / "run"), model=str(tiny_bert_std), strategy="probe")


def test_a_causal_tokenizer_without_pad_token_pads_with_end_of_text(tiny_gpt2, tmp_path):
    import shutil

    from enctune.encoders import Encoder

    folder = tmp_path / "gpt2-nopad"
    shutil.copytree(tiny_gpt2, folder)
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    cfg.pop("pad_token", None)
    cfg["eos_token"] = "[SEP]"
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    enc = Encoder.load(str(folder))
    assert enc.tokenizer.pad_token == "[SEP]" and enc.pooling == "last"
    texts = ["good", "the film was really a very good movie", "bad it"]
    together = enc.encode(enc.tokenize(texts))[(-1, "last")]
    alone = np.stack([enc.encode(enc.tokenize([t]))[(-1, "last")][0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_classify_metrics_against_hand_counts():
    from enctune.tasks.classify import ClassifyTask

    task = ClassifyTask.__new__(ClassifyTask)
    task.labels = ["a", "b", "c"]
    # true:      a a a b b c c   (c is never predicted; b is predicted once, wrongly)
    # predicted: a a b a a a a
    targets = np.array([0, 0, 0, 1, 1, 2, 2])
    logits = np.eye(3)[[0, 0, 1, 0, 0, 0, 0]]
    m = task.metrics(logits, targets)
    assert m["confusion_matrix"] == [[2, 1, 0], [2, 0, 0], [2, 0, 0]]
    assert m["accuracy"] == pytest.approx(2 / 7)
    a = m["per_class"]["a"]  # tp 2, predicted 6, support 3
    assert (a["precision"], a["recall"], a["support"]) == (pytest.approx(2 / 6), pytest.approx(2 / 3), 3)
    assert a["f1"] == pytest.approx(2 * (1 / 3) * (2 / 3) / (1 / 3 + 2 / 3))
    assert m["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert m["per_class"]["c"]["precision"] == 0.0  # never predicted: 0, not a division by zero
    assert m["macro_f1"] == pytest.approx(a["f1"] / 3)
