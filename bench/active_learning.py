"""Active-learning simulation: ``enctune suggest``'s choice of texts to label against random choice.

    python -m bench.active_learning [--data examples/sst2] [--start 20] [--step 20] [--rounds 10]
                                    [--seeds 3] [--out bench/results/active-learning]

The labelling is simulated with the training split's own labels: start from ``start``
random labelled examples, then each round label ``step`` more, chosen either at random or
by ``enctune.analysis.suggest`` (margin uncertainty of the current model, then greedy
k-centre diversity among the 5 x step most uncertain), and retrain. To keep it cheap the
encoder (the default, frozen) runs once over train and test, through enctune's feature
cache, and the model each round is enctune's linear probe (standardised logistic
regression, ``analysis.layers.make_probe``) on those features. Test accuracy after every
round is averaged over ``seeds`` (each seed draws its own start set and random picks).

Writes ``results.json`` (every accuracy of every seed), ``results.md`` (the table and the
command) and ``curve.svg`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np


def features(data: str):
    from enctune.encoders import Encoder
    from enctune.encoders.cache import cached_features
    from enctune.steps import load_splits
    from enctune.tasks import TASKS

    splits = load_splits(data)
    if splits.test is None:
        sys.exit(f"{data}: needs a test split")
    enc = Encoder.load("default")
    task = TASKS["classify"](splits.labels, splits.label_type)
    out = {}
    for name, ex in (("train", splits.train), ("test", splits.test)):
        f, _ = cached_features(enc, ex.texts, ex.pairs, enc.tokenize(ex.texts, ex.pairs), [enc.layer], [enc.pooling])
        out[name] = (f[(enc.layer, enc.pooling)], task.encode_labels(ex.labels).numpy())
    return out


def simulate(x, y, x_test, y_test, how: str, seed: int, start: int, step: int, rounds: int) -> list[float]:
    from enctune.analysis.layers import make_probe
    from enctune.analysis.suggest import select, uncertainty

    rng = np.random.default_rng(seed)
    labelled = list(rng.choice(len(y), size=start, replace=False))
    while len(set(y[labelled])) < len(set(y)):  # a probe needs every class once
        labelled = list(rng.choice(len(y), size=start, replace=False))
    accs = []
    for r in range(rounds + 1):
        clf = make_probe(seed).fit(x[labelled], y[labelled])
        accs.append(float((clf.predict(x_test) == y_test).mean()))
        if r == rounds:
            break
        pool = np.setdiff1d(np.arange(len(y)), labelled)
        if how == "random":
            new = rng.choice(pool, size=step, replace=False)
        else:
            probs = clf.predict_proba(x[pool])
            new = pool[select(uncertainty(probs, "margin"), x[pool], step, factor=5)]
        labelled += [int(i) for i in new]
    return accs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="examples/sst2")
    ap.add_argument("--start", type=int, default=20)
    ap.add_argument("--step", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default="bench/results/active-learning")
    a = ap.parse_args(argv)
    from enctune.analysis import plots
    from enctune.atomic import atomic_write_text

    t0 = time.perf_counter()
    feats = features(a.data)
    t_feat = time.perf_counter() - t0
    (x, y), (x_test, y_test) = feats["train"], feats["test"]
    runs = {how: [simulate(x, y, x_test, y_test, how, s, a.start, a.step, a.rounds) for s in range(a.seeds)]
            for how in ("suggest", "random")}
    sizes = [a.start + a.step * r for r in range(a.rounds + 1)]
    mean = {h: np.mean(v, axis=0) for h, v in runs.items()}
    std = {h: np.std(v, axis=0) for h, v in runs.items()}
    wins = int(sum(mean["suggest"][1:] > mean["random"][1:]))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cmd = "python -m bench.active_learning " + " ".join(argv if argv is not None else sys.argv[1:])
    result = {"command": cmd.strip(), "data": a.data, "labelled": sizes, "seeds": a.seeds, "runs": runs,
              "mean": {h: [round(float(v), 4) for v in m] for h, m in mean.items()},
              "std": {h: [round(float(v), 4) for v in s] for h, s in std.items()},
              "suggest_above_random_rounds": wins, "rounds": a.rounds,
              "seconds": {"features": round(t_feat, 1), "total": round(time.perf_counter() - t0, 1)},
              "python": platform.python_version()}
    atomic_write_text(out / "results.json", json.dumps(result, indent=1) + "\n")
    lines = [f"`{result['command']}`", "",
             f"Test accuracy by labelled examples, mean ± std over {a.seeds} seeds (linear probe on frozen default-"
             "encoder features).", "", "| labelled | suggest | random | suggest - random |", "| --- | --- | --- | --- |"]
    for i, n in enumerate(sizes):
        lines.append(f"| {n} | {mean['suggest'][i]:.4f} ± {std['suggest'][i]:.4f} | {mean['random'][i]:.4f} ± "
                     f"{std['random'][i]:.4f} | {mean['suggest'][i] - mean['random'][i]:+.4f} |")
    lines += ["", f"suggest above random after {wins} of {a.rounds} rounds; "
                  f"{result['seconds']['total']:.0f} s in all ({result['seconds']['features']:.0f} s features)."]
    atomic_write_text(out / "results.md", "\n".join(lines) + "\n")
    svg = plots.curves({h: (sizes, list(mean[h]), list(std[h])) for h in ("suggest", "random")},
                       "labelled training examples", "test accuracy",
                       f"active learning on {Path(a.data).name} ({a.seeds} seeds)")
    atomic_write_text(out / "curve.svg", svg)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
