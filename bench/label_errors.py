"""Label-error detection: how precise is ``enctune check``'s list of suspects?

    python -m bench.label_errors --data-root ../shared/data --out bench/results/label-errors/results.json

For SST-2, AG News and TREC train sets, a seeded share of the labels (0, 5, 10 and 20%) is flipped to another
class drawn uniformly; ``enctune check --json`` runs on the flipped file as a user runs it, and its
``label_issues`` (file and line of each suspect) are scored against the flipped lines: precision, recall and
the share of rows flagged. Beside it, on the same out-of-fold probabilities (``out_of_fold_probabilities``,
the features from the same cache), the probe's rule alone (``check --fine-tune off``, what ``check`` did before
fine-tuned folds joined it), cleanlab's ``find_label_issues`` with its defaults, and the probe's rule at C = 1
(as it was before the regularisation was chosen by the data).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .measure import write_json

DATASETS = ("sst2", "ag_news", "trec")
FLIPS = (0.0, 0.05, 0.1, 0.2)


def flipped(labels: list[str], share: float, seed: int = 0) -> tuple[list[str], set[int]]:
    """The labels with ``share`` of them changed to another class drawn uniformly, and the rows changed."""
    classes = sorted(set(labels))
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(labels), int(round(share * len(labels))), replace=False)
    out = list(labels)
    for i in rows:
        others = [c for c in classes if c != labels[i]]
        out[i] = others[int(rng.integers(len(others)))]
    return out, set(int(i) for i in rows)


def score(flagged: set[int], truth: set[int], n: int) -> dict:
    hit = len(flagged & truth)
    return {"flagged": len(flagged), "flagged_share": round(len(flagged) / n, 4),
            "precision": round(hit / len(flagged), 4) if flagged else None,
            "recall": round(hit / len(truth), 4) if truth else None}


def run_check(path: Path) -> set[int]:
    """Rows (0-based) that ``enctune check --json`` lists as label issues."""
    p = subprocess.run([sys.executable, "-m", "enctune", "check", "--data", str(path), "--json"],
                       capture_output=True, text=True, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return {i["line"] - 1 for i in json.loads(p.stdout)["label_issues"]}


def peers(texts: list[str], labels: list[str]) -> dict[str, set[int]]:
    """On the features check uses: the probe alone (``check --fine-tune off``, the rule before fine-tuned folds
    joined it), cleanlab's find_label_issues on the same probabilities, and the probe left at C = 1."""
    from cleanlab.filter import find_label_issues

    from enctune.analysis.check import MIN_CONFIDENCE, confident_disagreement, out_of_fold_probabilities
    from enctune.encoders import Encoder
    from enctune.encoders.cache import cached_features

    enc = Encoder.load("default", max_length=256)
    feats, _ = cached_features(enc, texts, None, enc.tokenize(texts, None), [enc.layer], [enc.pooling])
    x = feats[(enc.layer, enc.pooling)]
    classes = sorted(set(labels))
    y = np.array([classes.index(v) for v in labels])
    probs, _, _ = out_of_fold_probabilities(x, y, 5, 42)
    at_one, _, _ = out_of_fold_probabilities(x, y, 5, 42, grid=(1.0,))
    return {"probe alone (--fine-tune off)": set(np.flatnonzero(confident_disagreement(probs, y, MIN_CONFIDENCE)[0])
                                                 .tolist()),
            "cleanlab": set(np.flatnonzero(find_label_issues(y, probs)).tolist()),
            "C=1": set(np.flatnonzero(confident_disagreement(at_one, y, MIN_CONFIDENCE)[0]).tolist())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", default="../shared/data")
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--flips", default=",".join(str(f) for f in FLIPS))
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets.split(","):
            rows = [json.loads(line) for line in open(Path(args.data_root) / name / "train.jsonl", encoding="utf-8")]
            texts, labels = [r["text"] for r in rows], [str(r["label"]) for r in rows]
            for share in (float(f) for f in args.flips.split(",")):
                noisy, truth = flipped(labels, share)
                path = Path(tmp) / f"{name}-{share}.jsonl"
                path.write_text("".join(json.dumps({"text": t, "label": v}) + "\n" for t, v in zip(texts, noisy,
                                                                                                     strict=True)))
                t0 = time.perf_counter()
                found = {"enctune check": run_check(path)}
                seconds = {"enctune check": round(time.perf_counter() - t0, 1)}
                found.update(peers(texts, noisy))
                for tool, flagged in found.items():
                    results.append({"dataset": name, "flipped": share, "rows": len(rows), "tool": tool,
                                    **score(flagged, truth, len(rows)), "seconds": seconds.get(tool)})
                    r = results[-1]
                    print(f"{name} {share:.0%} {tool}: flagged {r['flagged']} ({r['flagged_share']:.1%}) "
                          f"precision {r['precision']} recall {r['recall']}", file=sys.stderr, flush=True)
    print("| data | flipped | tool | flagged (share) | precision | recall | seconds |\n"
          "| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        print(f"| {r['dataset']} | {r['flipped']:.0%} | {r['tool']} | {r['flagged']} ({r['flagged_share']:.1%}) | "
              f"{fmt(r['precision'])} | {fmt(r['recall'])} | {r['seconds'] if r['seconds'] is not None else '-'} |")
    if args.out:
        write_json(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
