"""``enctune check``: a data doctor to run before any training.

What it reports, per split (train, and validation/test when present):

- **class balance**: examples per label and the largest/smallest ratio on train;
- **duplicates**: rows whose text (and pair) is the same after lower-casing and collapsing
  white space; **conflicting duplicates**: such groups that carry different labels;
- **leakage**: the same normalised text in two splits (train/validation, train/test,
  validation/test): scores on the later split are then optimistic;
- **lengths**: tokens per example with the encoder's tokenizer (median, 90th and 99th
  percentile, max) and how many are cut at the encoder's maximum length;
- **likely label errors**: every labelled row is scored by a linear probe (frozen encoder
  features, ``analysis.layers.make_probe``) trained on the other folds of a stratified
  k-fold; a row is flagged when the probe predicts another label j with out-of-fold
  probability of at least t_j, the mean probability it gives j on rows labelled j (the
  per-class threshold of confident learning, Northcutt et al., 2021) and at least
  ``min_confidence``. Flagged rows are ranked most suspicious first (lowest probability of
  their own label); ``label_issues`` lists each with its file, line, given and suggested label.

  The probe's regularisation decides how far this can be trusted. An under-regularised probe
  (C = 1, what ``probe`` trains with) is confidently wrong on rows it never saw: on correctly
  labelled AG News and TREC it flagged 11% of rows. ``C`` is therefore chosen per data set,
  as the value of ``PROBE_GRID`` whose out-of-fold probabilities give the given labels the
  lowest log-loss (the grid climbs from the strongest regularisation and stops once the loss
  rises; the folds' probabilities at that C are the ones used, so no fit is wasted).

  A probe is one opinion: on SST-2 it is right on only 80% of rows, and its confident mistakes
  on sarcasm and negation look like label errors. So up to ``FINE_TUNE_MAX_ROWS`` labelled rows
  (``--fine-tune auto``; ``on``/``off`` force it) the encoder is also fine-tuned on two folds
  (``tuned_folds``, about one epoch over the data), and only rows that both models call
  mislabelled by the rule above are flagged, ranked by the two models' mean probability of
  their label. Measured with 10% of labels flipped (``python -m bench.label_errors``,
  BENCHMARKS.md): see the table there for every data set and level.

Data that cannot be read at all is a user error (exit 2); everything else is a finding in
the report, and the command exits 0.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from .. import progress
from ..data import Columns, Examples, examples_from_table, find_split_files, infer_columns
from ..data.readers import read_table
from ..encoders.cache import cached_features
from ..errors import UserError
from .layers import make_probe
from .tuned_folds import fine_tuned_probabilities

# inverse regularisation strengths the label-error probe climbs through (see the module docstring)
PROBE_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)

SHOW = 20  # rows listed per finding
MIN_CONFIDENCE = 0.6
# "auto" asks fine-tuned folds for a second opinion up to this many labelled rows: about one epoch of fine-tuning,
# 2-3 minutes for SST-2's 6,920 on a 2-core CPU; beyond it the probe alone answers unless --fine-tune on
FINE_TUNE_MAX_ROWS = 10_000


def _norm(text: str, pair: str | None) -> str:
    key = " ".join(text.lower().split())
    return key if pair is None else key + " \x00 " + " ".join(pair.lower().split())


def _read(data, validation, test, text_column, pair_column, label_column):

    data = Path(data)
    if not data.exists():
        raise UserError(f"{data}: no such file or folder.")
    files = find_split_files(data) if data.is_dir() else {"train": data}
    if validation:
        files["validation"] = Path(validation)
    if test:
        files["test"] = Path(test)
    train_table = read_table(files["train"])
    cols = infer_columns(train_table, text_column, pair_column, label_column)
    out = {"train": examples_from_table(train_table, cols)}
    for split in ("validation", "test"):
        if split in files:
            table = read_table(files[split])
            c = infer_columns(table, cols.text, cols.pair, cols.label if cols.label in table.columns else None,
                              need_label=False)
            out[split] = examples_from_table(table, Columns(c.text, c.pair, c.label), need_label=c.label is not None)
    return out, cols, {k: str(v) for k, v in files.items()}


def _groups(ex) -> dict[str, list[int]]:
    g = defaultdict(list)
    for i, t in enumerate(ex.texts):
        g[_norm(t, ex.pairs[i] if ex.pairs is not None else None)].append(i)
    return g


def _duplicates(ex) -> dict:
    groups = [ix for ix in _groups(ex).values() if len(ix) > 1]
    conflicting = [ix for ix in groups if ex.labels is not None and len({ex.labels[i] for i in ix}) > 1]
    show = lambda ix: {"text": ex.texts[ix[0]], "where": [ex.where(i) for i in ix],  # noqa: E731
                       "labels": [ex.labels[i] for i in ix] if ex.labels is not None else None}
    return {"duplicate_rows": sum(len(ix) - 1 for ix in groups), "groups": len(groups),
            "conflicting_groups": len(conflicting), "conflicting_rows": sum(len(ix) for ix in conflicting),
            "examples": [show(ix) for ix in groups[:SHOW]], "conflicts": [show(ix) for ix in conflicting[:SHOW]]}


def _leakage(splits: dict) -> list[dict]:
    out = []
    names = list(splits)
    keys = {s: _groups(ex) for s, ex in splits.items()}
    for a_i, a in enumerate(names):
        for b in names[a_i + 1:]:
            common = sorted(set(keys[a]) & set(keys[b]))
            out.append({"splits": [a, b], "shared_texts": len(common),
                        f"rows_in_{b}": sum(len(keys[b][k]) for k in common),
                        "examples": [{"text": splits[b].texts[keys[b][k][0]], a: splits[a].where(keys[a][k][0]),
                                      b: splits[b].where(keys[b][k][0])} for k in common[:SHOW]]})
    return out


def _lengths(encoder, ex) -> dict:
    tok = encoder.tokenizer
    quiet = logging.getLogger("transformers.tokenization_utils_base")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # uncut texts longer than the model's maximum would warn
    try:
        args = (ex.texts, ex.pairs) if ex.pairs is not None else (ex.texts,)
        n = np.array([len(x) for x in tok(*args, add_special_tokens=True, truncation=False)["input_ids"]])
    finally:
        quiet.setLevel(level)
    cut = np.flatnonzero(n > encoder.max_length)
    return {"tokens_median": int(np.median(n)), "tokens_p90": int(np.percentile(n, 90)),
            "tokens_p99": int(np.percentile(n, 99)), "tokens_max": int(n.max()), "max_length": encoder.max_length,
            "truncated": int(len(cut)), "truncated_where": [ex.where(int(i)) for i in cut[:SHOW]]}


def out_of_fold_probabilities(features: np.ndarray, y: np.ndarray, folds: int, seed: int,
                              grid: tuple[float, ...] = PROBE_GRID) -> tuple[np.ndarray, float, dict]:
    """Out-of-fold class probabilities (N, C) of the linear probe at the regularisation that fits them best.

    Args:
        features: (N, H) frozen encoder features.
        y: (N,) class indices.
        folds: stratified folds; each row is scored by the probe fitted on the others.
        grid: values of C tried in increasing order; the climb stops once the out-of-fold log-loss of the given
            labels rises.

    Returns:
        The probabilities at the chosen C, that C, and the log-loss of every C tried.
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    best, losses = None, {}
    for c in grid:
        probs = cross_val_predict(make_probe(seed, c), features, y, cv=cv, method="predict_proba")
        losses[c] = float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0)).mean())
        if best is not None and losses[c] > losses[best[1]]:
            break
        best = (probs, c)
    return best[0], best[1], {str(c): round(v, 4) for c, v in losses.items()}


def confident_disagreement(probs: np.ndarray, y: np.ndarray, min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Confident learning's rule: row i is suspect when the model predicts another class j with probability at
    least t_j, the mean probability it gives j on rows labelled j, and at least ``min_confidence``. Returns the
    suspect mask (N,) and the thresholds (C,)."""
    thresholds = np.array([probs[y == j, j].mean() if (y == j).any() else 1.0 for j in range(probs.shape[1])])
    pred = probs.argmax(-1)
    p_pred = probs[np.arange(len(y)), pred]
    return (pred != y) & (p_pred >= np.maximum(thresholds[pred], min_confidence)), thresholds


def likely_label_errors(features: np.ndarray, labels: list[str], folds: int = 5, seed: int = 42,
                        min_confidence: float = MIN_CONFIDENCE, second_opinion=None,
                        ) -> tuple[list[tuple[int, str, float, float]], dict]:
    """Rows whose out-of-fold probe prediction confidently disagrees with their label; with
    ``second_opinion(classes) -> (N, C)`` out-of-fold probabilities of another model (``tuned_folds``), only the
    rows both models call mislabelled.

    Returns ([(row, suggested label, p(suggested), p(own label))...] most suspicious first, info); with a second
    opinion the probabilities are the two models' mean.
    """
    classes = sorted(set(labels))
    y = np.array([classes.index(x) for x in labels])
    smallest = int(np.bincount(y).min())
    k = min(folds, smallest)
    if len(classes) < 2 or k < 2:
        return [], {"skipped": "needs at least two labels with two examples each"}
    probs, c, losses = out_of_fold_probabilities(features, y, k, seed)
    flag, thresholds = confident_disagreement(probs, y, min_confidence)
    info = {"folds": k, "probe_accuracy": round(float((probs.argmax(-1) == y).mean()), 4), "probe_C": c,
            "log_loss_by_C": losses, "probe_flags": int(flag.sum()),
            "class_thresholds": {name: round(float(t), 4) for name, t in zip(classes, thresholds, strict=True)}}
    if second_opinion is not None:
        other = second_opinion(classes)
        agree, _ = confident_disagreement(other, y, min_confidence)
        info.update({"fine_tuned_accuracy": round(float((other.argmax(-1) == y).mean()), 4),
                     "fine_tuned_flags": int(agree.sum()), "rule": "flagged by the probe and the fine-tuned folds"})
        flag &= agree
        probs = (probs + other) / 2
    suggested = np.where(np.arange(len(classes))[None, :] == y[:, None], -1.0, probs).argmax(-1)
    p_suggested, p_own = probs[np.arange(len(y)), suggested], probs[np.arange(len(y)), y]
    rows = np.flatnonzero(flag)
    rows = rows[np.argsort(p_own[rows], kind="stable")]
    return [(int(i), classes[suggested[i]], float(p_suggested[i]), float(p_own[i])) for i in rows], info


def _issue(ex, i: int, rank: int, given: str, suggested: str, p_suggested: float, p_given: float) -> dict:
    """One suspect for ``label_issues``: where it is (file and 1-based line, as every message names them)."""
    table = ex.table
    return {"rank": rank, "file": str(table.path) if table is not None else None,
            "line": table.lines[ex.rows[i]] if table is not None else i + 1, "text": ex.texts[i],
            "given_label": given, "suggested_label": suggested, "out_of_fold_probability": round(p_suggested, 4),
            "probability_of_given": round(p_given, 4)}


def check_data(data: str, validation: str | None = None, test: str | None = None, model: str = "default",
               text_column: str | None = None, pair_column: str | None = None, label_column: str | None = None,
               max_length: int = 256, label_errors: bool = True, folds: int = 5, seed: int = 42,
               min_confidence: float = MIN_CONFIDENCE, layer: int = -1, pooling: str | None = None,
               fine_tune: str = "auto", precision: str = "auto") -> dict:
    """The data doctor's report as a dict (see the module docstring); ``findings`` sums it up in words.
    ``fine_tune``: "on" asks the encoder fine-tuned on folds for a second opinion on label errors
    (``tuned_folds``), "off" trusts the probe alone, "auto" asks up to ``FINE_TUNE_MAX_ROWS`` labelled rows."""
    from ..encoders import Encoder  # lazy: torch (~2 s), only when the encoder runs

    splits, cols, files = _read(data, validation, test, text_column, pair_column, label_column)
    report: dict = {"files": files, "columns": {"text": cols.text, "pair": cols.pair, "label": cols.label},
                    "sizes": {s: len(ex) for s, ex in splits.items()}, "findings": []}
    findings = report["findings"]

    counts = {s: dict(sorted(Counter(ex.labels).items())) for s, ex in splits.items() if ex.labels is not None}
    tc = counts["train"]
    ratio = max(tc.values()) / min(tc.values())
    unseen = {s: sorted(set(c) - set(tc)) for s, c in counts.items() if s != "train" and set(c) - set(tc)}
    report["balance"] = {"counts": counts, "train_max_min_ratio": round(ratio, 3), "labels_not_in_train": unseen}
    if ratio >= 5:
        findings.append(f"class imbalance: the largest train class is {ratio:.1f}x the smallest "
                        "(consider --class-weights balanced)")
    small = [lab for lab, n in tc.items() if n < 8]
    if small:
        findings.append(f"{len(small)} label(s) with fewer than 8 train examples: {', '.join(small[:10])}")
    for s, labs in unseen.items():
        findings.append(f"{s} has label(s) never seen in train: {', '.join(labs[:10])}")

    report["duplicates"] = {s: _duplicates(ex) for s, ex in splits.items()}
    for s, d in report["duplicates"].items():
        if d["duplicate_rows"]:
            findings.append(f"{s}: {d['duplicate_rows']} duplicate row(s) in {d['groups']} group(s)")
        if d["conflicting_groups"]:
            findings.append(f"{s}: {d['conflicting_groups']} duplicate group(s) with conflicting labels "
                            f"({d['conflicting_rows']} rows)")
    report["leakage"] = _leakage(splits)
    for leak in report["leakage"]:
        if leak["shared_texts"]:
            a, b = leak["splits"]
            findings.append(f"leakage: {leak['shared_texts']} text(s) of {b} also in {a}")

    encoder = Encoder.load(model, pooling=pooling, max_length=max_length, layer=layer)
    report["encoder"] = {"model": model, "max_length": encoder.max_length, "pooling": encoder.pooling,
                         "layer": encoder.layer}
    report["lengths"] = {s: _lengths(encoder, ex) for s, ex in splits.items()}
    for s, ln in report["lengths"].items():
        if ln["truncated"]:
            findings.append(f"{s}: {ln['truncated']} text(s) longer than {ln['max_length']} tokens will be cut")

    if label_errors:
        known = set(tc)
        pool = [(s, i) for s, ex in splits.items() if ex.labels is not None for i in range(len(ex))
                if ex.labels[i] in known]
        feats = []
        for s, ex in splits.items():
            if ex.labels is None:
                continue
            tok = encoder.tokenize(ex.texts, ex.pairs)
            with progress.bar(f"encode {s}", total=len(ex)) as pbar:
                f, _ = cached_features(encoder, ex.texts, ex.pairs, tok, [encoder.layer], [encoder.pooling],
                                       progress=pbar)
            x = f[(encoder.layer, encoder.pooling)]
            feats.append(x[[i for i in range(len(ex)) if ex.labels[i] in known]])
        x = np.concatenate(feats)
        labels = [splits[s].labels[i] for s, i in pool]
        second = None
        if fine_tune == "on" or (fine_tune == "auto" and len(labels) <= FINE_TUNE_MAX_ROWS):
            pooled = Examples([splits[s].texts[i] for s, i in pool],
                              None if cols.pair is None else [splits[s].pairs[i] for s, i in pool], labels)

            def second(classes):
                return fine_tuned_probabilities(pooled, classes, model, max_length, seed=seed, precision=precision)
        flagged, info = likely_label_errors(x, labels, folds, seed, min_confidence, second)
        rows = [{"split": pool[r][0], "where": splits[pool[r][0]].where(pool[r][1]),
                 "text": splits[pool[r][0]].texts[pool[r][1]], "label": labels[r], "probe_says": p,
                 "p_probe": round(pp, 4), "p_label": round(po, 4)} for r, p, pp, po in flagged]
        report["label_errors"] = {"count": len(rows), **info, "rows": rows[:max(SHOW, 50)]}
        report["label_issues"] = [_issue(splits[pool[r][0]], pool[r][1], rank, labels[r], p, pp, po)
                                  for rank, (r, p, pp, po) in enumerate(flagged, 1)]
        if rows:
            who = ("a cross-validated probe and the encoder fine-tuned on folds both confidently predict" if second
                   else "a cross-validated probe confidently predicts")
            findings.append(f"{len(rows)} likely label error(s): {who} another label")
    if not findings:
        findings.append("no problems found")
    return report


def format_report(r: dict) -> str:
    """The report as text for the terminal."""
    lines = ["files: " + ", ".join(f"{k} {v} ({r['sizes'][k]} rows)" for k, v in r["files"].items())]
    lines.append("labels (train): " + ", ".join(f"{k} {v}" for k, v in r["balance"]["counts"]["train"].items()))
    lines.append("findings:")
    lines += [f"  - {f}" for f in r["findings"]]
    for s, d in r["duplicates"].items():
        for c in d["conflicts"][:5]:
            lines.append(f"  conflicting duplicate in {s}: {c['text'][:70]!r} at {'; '.join(c['where'][:3])} "
                         f"labels {', '.join(c['labels'][:3])}")
    for leak in r["leakage"]:
        for e in leak["examples"][:5]:
            a, b = leak["splits"]
            lines.append(f"  leaked {b} text {e['text'][:70]!r} ({e[b]}) also at {e[a]}")
    for s, ln in r["lengths"].items():
        lines.append(f"lengths {s}: median {ln['tokens_median']}, p90 {ln['tokens_p90']}, p99 {ln['tokens_p99']}, "
                     f"max {ln['tokens_max']} tokens; {ln['truncated']} over {ln['max_length']}")
    le = r.get("label_errors")
    if le and le.get("rows"):
        tuned = (f"; encoder fine-tuned on folds {le['fine_tuned_accuracy']:.3f}; flagged by both"
                 if "fine_tuned_accuracy" in le else "")
        lines.append(f"likely label errors (probe accuracy {le['probe_accuracy']:.3f} over {le['folds']} folds{tuned}), "
                     "most suspicious first:")
        says = "both say" if "fine_tuned_accuracy" in le else "probe says"
        for rank, e in enumerate(le["rows"][:SHOW], 1):
            lines.append(f"  #{rank} {e['where']}: {e['text'][:60]!r} labelled {e['label']}, {says} "
                         f"{e['probe_says']} (out-of-fold p={e['p_probe']:.2f})")
        if le["count"] > SHOW:
            lines.append(f"  ... {le['count'] - SHOW} more (--json lists every one under label_issues)")
    return "\n".join(lines)
