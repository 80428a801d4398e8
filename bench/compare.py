"""The headline figures of ``python -m bench`` runs of two trees, side by side: did a change move them?

    python -m bench.compare before=RESULTS[,RESULTS...] after=RESULTS[,RESULTS...] [--out FILE.md]

Each RESULTS is a folder (or ``results.json``) written by ``python -m bench --rows full,probe,predict``; give
one per round when the trees were run alternately (before, after, before, after), so that each tree's spread
across rounds sits beside the difference between trees. For every headline figure of the top rows (enctune
against the Trainer's best, the probe cold and warm against its peers, prediction against the pipeline, and
every accuracy) the table shows each round's value per tree, and the change of the mean between the first tree
and each other one. Ratios are computed per round, inside one harness run, as that run's results.md does.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

# (row, label, numerator variant, denominator variant or None, metric, kind): "ratio" divides the two variants'
# medians, "value" shows the numerator's own figure (an accuracy)
FIGURES = [
    ("full", "train ex/s, enctune_full / trainer_best", "enctune_full", "trainer_best",
     "train_examples_per_second", "ratio"),
    ("full", "wall s, enctune_full / trainer_best", "enctune_full", "trainer_best", "wall_seconds", "ratio"),
    ("full", "test acc, enctune_full", "enctune_full", None, "test_accuracy", "value"),
    ("full", "test acc, trainer_best", "trainer_best", None, "test_accuracy", "value"),
    ("probe", "wall s, trainer_frozen / enctune_probe_cold", "trainer_frozen", "enctune_probe_cold",
     "wall_seconds", "ratio"),
    ("probe", "wall s, trainer_frozen / enctune_probe_warm", "trainer_frozen", "enctune_probe_warm",
     "wall_seconds", "ratio"),
    ("probe", "wall s, st_logreg / enctune_probe_cold", "st_logreg", "enctune_probe_cold", "wall_seconds", "ratio"),
    ("probe", "wall s, st_logreg / enctune_probe_warm", "st_logreg", "enctune_probe_warm", "wall_seconds", "ratio"),
    ("probe", "test acc, enctune_probe_cold", "enctune_probe_cold", None, "test_accuracy", "value"),
    ("probe", "test acc, enctune_probe_warm", "enctune_probe_warm", None, "test_accuracy", "value"),
    ("probe", "test acc, st_logreg", "st_logreg", None, "test_accuracy", "value"),
    ("predict", "ex/s, enctune_fp32 / pipeline", "enctune_fp32", "pipeline", "examples_per_second", "ratio"),
    ("predict", "ex/s, enctune_fast / pipeline", "enctune_fast", "pipeline", "examples_per_second", "ratio"),
    ("predict", "test acc, enctune_fp32", "enctune_fp32", None, "test_accuracy", "value"),
    ("predict", "test acc, enctune_fast", "enctune_fast", None, "test_accuracy", "value"),
    ("predict", "label agreement, enctune_fp32 with pipeline", "enctune_fp32", None, "agreement_with_pipeline",
     "value"),
]


def medians(path: Path) -> dict:
    """{row: {variant: {metric: median}}} of one ``python -m bench`` results.json."""
    path = path / "results.json" if path.is_dir() else path
    rows = json.loads(path.read_text())["rows"]
    return {name: row["summary"]["medians"].get("", {}) for name, row in rows.items() if "summary" in row}


def figure(run: dict, row: str, num: str, den: str | None, metric: str) -> float | None:
    variants = run.get(row, {})
    a = variants.get(num, {}).get(metric)
    if den is None:
        return a
    b = variants.get(den, {}).get(metric)
    return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


def table(trees: dict[str, list[dict]]) -> str:
    names = list(trees)
    head = ["figure"] + [f"{t} (per round)" for t in names] + [f"{t} - {names[0]}" for t in names[1:]]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for row, label, num, den, metric, _kind in FIGURES:
        values = {t: [figure(run, row, num, den, metric) for run in runs] for t, runs in trees.items()}
        if not any(v is not None for vs in values.values() for v in vs):
            continue
        cells = [label] + [", ".join("-" if v is None else f"{v:.4g}" for v in values[t]) for t in names]
        ref = [v for v in values[names[0]] if v is not None]
        for t in names[1:]:
            got = [v for v in values[t] if v is not None]
            cells.append(f"{statistics.mean(got) - statistics.mean(ref):+.4f}" if got and ref else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs="+", help="NAME=RESULTS[,RESULTS...], one per tree")
    ap.add_argument("--out", type=Path, help="also write the table to this markdown file")
    args = ap.parse_args(argv)
    trees = {}
    for spec in args.trees:
        name, _, paths = spec.partition("=")
        if not paths:
            ap.error(f"{spec}: expected NAME=RESULTS[,RESULTS...]")
        trees[name] = [medians(Path(p)) for p in paths.split(",")]
    text = table(trees)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
