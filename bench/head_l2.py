"""Logistic regression on frozen features, few examples a class: raw against unit-length vectors, per L2 strength.

    python -m bench.head_l2 [--datasets sst2,ag_news,trec,financial_phrasebank,goemotions] [--shots 8]
                            [--seeds 0,1,2,3,4] [--test-rows 2000] [--data-root ../shared/data]

The evidence behind the probe's and fewshot's solved head (``heads.UnitNorm``, ``probe.UNRANKED_L2``): the
default encoder's pooled vectors (``enctune.embed``) of the few-shot suite's samples (``bench.fewshot``: the
same draws, the same test rows), scikit-learn's ``LogisticRegression`` at ``C = 1 / (2 s n)``, which minimises
the same objective as enctune's ``L2Solver`` at strength ``s`` (mean cross-entropy + s ||W||^2), for every
strength of ``probe.L2_PATH``. Prints test accuracy, mean over the seeds, per dataset and feature kind.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from bench.data import per_class_indices, read_jsonl
from bench.fewshot import DATASETS, ROOT, labelled_rows, scored_rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--shots", type=int, default=8)
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--test-rows", type=int, default=2000)
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    a = ap.parse_args(argv)
    from sklearn.linear_model import LogisticRegression

    import enctune
    from enctune.strategies.probe import L2_PATH

    seeds = [int(s) for s in a.seeds.split(",")]
    print(f"| dataset | vectors | {' | '.join(f'{s:g}' for s in L2_PATH)} |")
    print("| --- | --- |" + " ---: |" * len(L2_PATH))
    for ds in a.datasets.split(","):
        src = Path(a.data_root) / ds
        train = labelled_rows(read_jsonl(src / "train.jsonl"))
        test = scored_rows(labelled_rows(read_jsonl(src / "test.jsonl")), a.test_rows)
        picks = {s: per_class_indices(train, a.shots, s) for s in seeds}
        rows = sorted({i for p in picks.values() for i in p})
        vec = dict(zip(rows, enctune.embed("default", [train[i]["text"] for i in rows]), strict=True))
        x_test, y_test = enctune.embed("default", [r["text"] for r in test]), np.array([r["label"] for r in test])
        for kind in ("raw", "unit"):
            acc = np.zeros((len(seeds), len(L2_PATH)))
            for k, seed in enumerate(seeds):
                x = np.stack([vec[i] for i in picks[seed]])
                y = [train[i]["label"] for i in picks[seed]]
                xt = x_test
                if kind == "unit":
                    x = x / np.linalg.norm(x, axis=1, keepdims=True)
                    xt = x_test / np.linalg.norm(x_test, axis=1, keepdims=True)
                for j, s in enumerate(L2_PATH):
                    clf = LogisticRegression(C=1 / (2 * s * len(x)), max_iter=5000).fit(x, y)
                    acc[k, j] = np.mean(clf.predict(xt) == y_test)
            print(f"| {ds} | {kind} | " + " | ".join(f"{v:.3f}" for v in acc.mean(0)) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
