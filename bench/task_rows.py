"""The task rows: every task kind beyond single-text classification, enctune against the
Hugging Face ``Trainer`` recipe a user would follow, on the same data, encoder (the
default), epochs and batch size. Scores are compared as differences (enctune minus peer).

- ``rte``: sentence pairs, RTE train -> validation accuracy; 3 epochs, batch 32 (the
  Trainer at lr 2e-5, its text-classification example's setting; truncation at 256).
- ``conll``: token tagging, CoNLL-2003 train -> test entity-level micro F1; 1 epoch,
  batch 32 (the Trainer at lr 5e-5, its token-classification example's recipe).
- ``goemotions``: multi-label, 28 labels, train -> test micro- and macro-F1; the Trainer
  recipe: 2 epochs at 5e-5, batch 32, fixed 0.5 threshold; enctune with its defaults.
- ``squad``: extractive QA, squad_small split by article title (80% of titles train,
  ``random.Random(0)``) -> test EM and F1 (0-100); the Trainer's question-answering example
  recipe: 2 epochs at 5e-5, batch 16, max length 384, stride 128; enctune with its defaults.
- ``stsb``: regression, STS-B train -> test Spearman; enctune with its defaults against the
  encoder's own embeddings compared by cosine with no training at all.

The Trainer scores are computed in ``bench`` (``bench.scorers``: CoNLL chunk F1 and SQuAD
EM/F1), enctune's are read from its run's ``metrics.json``.
"""

from __future__ import annotations

from pathlib import Path

from .rows import Case, Metric, Ratio, Row, Settings
from .task_data import squad_by_title, subset_folder

QUICK = {"train": 200, "validation": 60, "test": 100}
QUICK_SQUAD = {"train": 60, "test": 30}
COMMON = [Metric("train_seconds", "train s", "lower"), Metric("wall_seconds", "wall s", "lower"),
          Metric("peak_rss_mb", "peak RSS MB", "lower")]


def _folder(s: Settings, name: str) -> Path:
    src = s.data_root / name
    if not s.quick:
        return src
    key = f"task-{name}"
    if key not in s._folders:
        s._folders[key] = subset_folder(src, s.work / "data" / f"{name}-quick", QUICK)
    return s._folders[key]


def _diffs(metrics: list[tuple[str, str]], ours: str, peer: str) -> list[Ratio]:
    return [Ratio(f"{label}, {ours} - {peer}", ours, peer, key, kind="diff", better="higher")
            for key, label in metrics]


def _pair_row(s: Settings, name: str, description: str, scores: list[Metric], ours: tuple[str, dict],
              peer: tuple[str, dict], notes: list[str], extra: list[Metric] | None = None) -> Row:
    (ours_name, ours_args), (peer_name, peer_args) = ours, peer
    return Row(
        name=name, description=description, metrics=scores + (extra or []) + COMMON,
        ratios=_diffs([(m.key, m.header) for m in scores], ours_name, peer_name),
        make_cases=lambda rep: [Case("", ours_name, ours_args), Case("", peer_name, peer_args)],
        notes=notes,
    )


def plan_rte(s: Settings) -> Row:
    data = str(_folder(s, "rte"))
    budget = {"epochs": 3, "batch_size": 32}
    ours = {"data": data, "flags": {"strategy": "full", **budget},
            "scores": {"validation_accuracy": ["validation", "accuracy"]}}
    peer = {"data": data, "encoder": s.encoder, "score_split": "validation", "lr": 2e-5, "max_length": 256,
            "group_by_length": True, **budget}
    return _pair_row(
        s, "rte", "Sentence pairs, RTE (train 2,490 -> validation 277), 3 epochs, batch 32.",
        [Metric("validation_accuracy", "validation acc", "higher")], ("enctune_rte", ours), ("trainer_rte", peer),
        ["enctune: enctune.train(data=rte, strategy='full', epochs=3, batch_size=32), its other defaults; "
         "it scores metrics['validation']['accuracy'].",
         "Trainer: AutoModelForSequenceClassification, pair encoding tok(text, text_pair), truncation 256, "
         "dynamic padding, lr 2e-5, no warm-up or weight decay (TrainingArguments defaults); length-grouped "
         "batches (group_by_length), off in the example, to cut padding on a 2-core CPU.",
         "RTE's test labels are hidden: validation is the scored split for both, and enctune also sees it "
         "during training (for its own checkpoint choice)."])


def plan_conll(s: Settings) -> Row:
    data = str(_folder(s, "conll2003"))
    budget = {"epochs": 1, "batch_size": 32}
    ours = {"data": data, "flags": {"task": "tag", **budget}, "scores": {"test_f1": ["test", "f1"]}}
    peer = {"data": data, "encoder": s.encoder, "lr": 5e-5, "max_length": 256, "group_by_length": True, **budget}
    return _pair_row(
        s, "conll", "Token tagging, CoNLL-2003 (train 14,041 -> test 3,453 sentences), 1 epoch, batch 32.",
        [Metric("test_f1", "test entity F1", "higher")], ("enctune_conll", ours), ("trainer_conll", peer),
        ["enctune: enctune.train(data=conll2003, task='tag', epochs=1, batch_size=32); metrics['test']['f1'].",
         "Trainer: AutoModelForTokenClassification, first sub-token labelled (-100 elsewhere), "
         "DataCollatorForTokenClassification, lr 5e-5, truncation 256, length-grouped batches; entity-level micro F1 by bench.scorers "
         "(exact BIO chunk spans, as conlleval counts them).",
         "1 epoch: a budget chosen to fit a 2-core CPU."],
        extra=[Metric("test_precision", "test P"), Metric("test_recall", "test R")])


def plan_goemotions(s: Settings) -> Row:
    data = str(_folder(s, "goemotions"))
    scores = [Metric("test_micro_f1", "test micro-F1", "higher"), Metric("test_macro_f1", "test macro-F1", "higher")]
    ours = {"data": data, "flags": {"task": "multilabel"},
            "scores": {"test_micro_f1": ["test", "micro_f1"], "test_macro_f1": ["test", "macro_f1"]}}
    peer = {"data": data, "encoder": s.encoder, "epochs": 2, "batch_size": 32, "lr": 5e-5, "max_length": 256,
            "group_by_length": True}
    return _pair_row(
        s, "goemotions", "Multi-label, GoEmotions, 28 labels (train 20,000 -> test 5,427).",
        scores, ("enctune_goemotions", ours), ("trainer_goemotions", peer),
        ["enctune: enctune.train(data=goemotions, task='multilabel') with its defaults.",
         "Trainer: AutoModelForSequenceClassification(problem_type='multi_label_classification'), 2 epochs, "
         "lr 5e-5, batch 32, dynamic padding, length-grouped batches, truncation 256, fixed threshold 0.5 on sigmoid outputs.",
         "F1 (0-1) from sklearn.metrics.f1_score(average='micro'/'macro', zero_division=0)."],
        extra=[Metric("test_rows_without_label", "test rows with no label")])


def plan_squad(s: Settings) -> Row:
    folder = s.work / "data" / ("squad-by-title-quick" if s.quick else "squad-by-title")
    info = squad_by_title(s.data_root / "squad_small" / "validation.jsonl", folder,
                          limit=QUICK_SQUAD if s.quick else None)
    data = str(folder)
    scores = [Metric("test_exact_match", "test EM", "higher"), Metric("test_f1", "test F1", "higher")]
    ours = {"data": data, "flags": {"task": "extract"},
            "scores": {"test_exact_match": ["test", "exact_match"], "test_f1": ["test", "f1"]}}
    peer = {"data": data, "encoder": s.encoder, "epochs": 2, "batch_size": 16, "lr": 5e-5, "max_length": 384,
            "stride": 128, "n_best": 20, "max_answer_length": 30}
    row = _pair_row(
        s, "squad", f"Extractive QA, squad_small split by article title: {info['train_titles']} titles / "
                    f"{info['train_questions']} questions train, {info['test_titles']} / "
                    f"{info['test_questions']} test.",
        scores, ("enctune_squad", ours), ("trainer_squad", peer),
        ["Split: sorted unique titles shuffled with random.Random(0), the first 80% train, the rest test; "
         "written into the bench's temporary work folder only.",
         "enctune: enctune.train(data=<split folder>, task='extract') with its defaults.",
         "Trainer: the question-answering example recipe (AutoModelForQuestionAnswering, 2 epochs, lr 5e-5, "
         "batch 16, max length 384, stride 128, padding to max length, n-best 20, max answer length 30).",
         "EM and F1 (0-100) by bench.scorers with the official SQuAD v1.1 normalisation, best over gold answers."],
        extra=[Metric("train_windows", "train windows")])
    row.setup = {"split": info}
    return row


def plan_stsb(s: Settings) -> Row:
    data = str(_folder(s, "stsb"))
    ours = {"data": data, "flags": {"task": "regress"}, "scores": {"test_spearman": ["test", "spearman"]}}
    ref = {"data": data, "split": "test", "model": "default"}
    return _pair_row(
        s, "stsb", "Regression, STS-B (train 5,749 -> test 1,379 pairs): enctune vs the encoder's own "
                   "embeddings compared by cosine, with no training.",
        [Metric("test_spearman", "test Spearman", "higher")], ("enctune_stsb", ours), ("cosine_stsb", ref),
        ["enctune: enctune.train(data=stsb, task='regress') with its defaults; metrics['test']['spearman'].",
         "cosine_stsb: enctune.embed('default', texts) for both sides of every test pair (mean pooling), cosine "
         "similarity, Spearman against the gold scores (scipy.stats.spearmanr). No training."])


TASK_ROWS = {"rte": plan_rte, "conll": plan_conll, "goemotions": plan_goemotions, "squad": plan_squad,
             "stsb": plan_stsb}
