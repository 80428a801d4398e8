"""Commands that look inside data and runs: probe, report, suggest, check.

Thin shells over ``enctune.analysis``. Same conventions as every command: progress on stderr,
results on stdout, ``--json`` for machines, a ``UserError`` for every mistake.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from ..analysis import layers, plots
from ..analysis.check import check_data, format_report
from ..analysis.report import load_run, render_comparison, render_run_report
from ..analysis.suggest import suggest as run_suggest
from ..analysis.suggest import write_suggestions
from ..atomic import atomic_write, atomic_write_text
from ..errors import UserError
from .app import Opt, app, setup


@app.command()
def probe(
    data: str = Opt(..., "--data", help="Labelled file (train) or a folder with train/validation files."),
    model: str = Opt("default", "--model", help="Encoder: 'default', a local folder or a hub id."),
    validation: str | None = Opt(None, "--validation", help="Validation file (else carved from train)."),
    pooling: str | None = Opt(None, "--pooling", help="Comma-separated poolings to compare (cls,mean,max,last) "
                                                      "[default: the encoder's]."),
    plot: str | None = Opt(None, "--plot", help="Where to write the SVG plot [default: probe_layers.svg]."),
    text_column: str | None = Opt(None, "--text-column", help="Column holding the text [default: found by name]."),
    text_pair_column: str | None = Opt(None, "--text-pair-column", help="Column holding the second text [default: found by name]."),
    label_column: str | None = Opt(None, "--label-column", help="Column holding the label [default: found by name]."),
    max_length: int = Opt(256, "--max-length", min=8, help="Tokens per text; longer texts are cut."),
    seed: int = Opt(42, "--seed", min=0, help="Random seed (validation split, folds)."),
    quiet: bool = Opt(False, "--quiet", "-q", help="No progress bars or messages on stderr."),
    as_json: bool = Opt(False, "--json", help="Print the table as JSON."),
):
    """Linear probe on every layer of a frozen encoder: where does the task's information live?"""
    setup(quiet or as_json)

    plot = plot or "probe_layers.svg"
    if Path(plot).suffix.lower() != ".svg":
        raise UserError(f"--plot {plot}: expected a .svg file (the plot is written as SVG).")
    poolings = [p.strip() for p in pooling.split(",") if p.strip()] if pooling else None
    result = layers.probe_layers(data, model, poolings, validation, text_column, text_pair_column, label_column,
                                 max_length, seed=seed)
    svg = plots.layer_scores(result["rows"], "accuracy", f"linear probe by layer: {Path(data).name}")
    atomic_write(plot, lambda tmp: Path(tmp).write_text(svg))
    result["plot"] = str(plot)
    if as_json:
        print(json.dumps(result))
    else:
        print(layers.format_table(result))
        if not quiet:
            print(f"wrote {plot}", file=sys.stderr)

@app.command()
def report(
    runs: list[str] = typer.Argument(..., help="One run folder (its report.html is rewritten) or several "
                                               "(compared side by side)."),
    out: str | None = Opt(None, "--out", help="HTML file to write [default: RUN/report.html for one run, "
                                              "compare.html for several]."),
    quiet: bool = Opt(False, "--quiet", "-q", help="No progress bars or messages on stderr."),
):
    """Write a run's self-contained HTML report, or compare runs side by side."""
    setup(quiet)

    loaded = [load_run(r) for r in runs]
    if len(loaded) == 1:
        name, metrics, config, mistakes = loaded[0]
        html = render_run_report(name, metrics, config, mistakes)
        target = out or str(Path(runs[0]) / "report.html")
    else:
        html = render_comparison(loaded)
        target = out or "compare.html"
    if Path(target).suffix.lower() not in (".html", ".htm"):
        raise UserError(f"--out {target}: expected an .html file.")
    atomic_write_text(target, html)
    print(target)

@app.command()
def suggest(
    run: str = typer.Argument(..., help="Run folder of a classifier."),
    pool: str = Opt(..., "--pool", help="Unlabelled texts (jsonl, csv, tsv, json, parquet, txt)."),
    n: int = Opt(50, "--n", help="How many texts to suggest."),
    out: str = Opt("to_label.jsonl", "--out", help="JSON lines file to write, ready for labelling."),
    by: str = Opt("margin", "--by", help="Uncertainty score: margin or entropy."),
    factor: int = Opt(5, "--factor", help="Diversity: pick n spread-out texts among the factor*n most "
                                          "uncertain (1 = uncertainty alone)."),
    text_column: str | None = Opt(None, "--text-column", help="Column holding the text [default: found by name]."),
    text_pair_column: str | None = Opt(None, "--text-pair-column", help="Column holding the second text [default: found by name]."),
    batch_size: int = Opt(256, "--batch-size", min=1, help="Most texts per batch."),
    quiet: bool = Opt(False, "--quiet", "-q", help="No progress bars or messages on stderr."),
    as_json: bool = Opt(False, "--json", help="Print the suggested rows as a JSON array too."),
):
    """Rank unlabelled texts by what labelling them would teach the model; write the top n to label."""
    setup(quiet or as_json)

    if Path(out).suffix.lower() not in (".jsonl", ".ndjson"):
        raise UserError(f"--out {out}: expected a .jsonl file.")
    rows = run_suggest(run, pool, n, by, factor, text_column, text_pair_column, batch_size)
    write_suggestions(rows, out)
    if as_json:
        print(json.dumps(rows))
    elif not quiet:
        print(f"wrote {len(rows)} texts to label to {out}; fill in their labels, then "
              f"'enctune train ... --add {out}'", file=sys.stderr)

@app.command()
def check(
    data: str = Opt(..., "--data", help="A data file (train) or a folder with train/validation/test files."),
    validation: str | None = Opt(None, "--validation", help="Validation file [default: none]."),
    test: str | None = Opt(None, "--test", help="Test file [default: none]."),
    model: str = Opt("default", "--model", help="Encoder whose tokenizer and features the checks use."),
    text_column: str | None = Opt(None, "--text-column", help="Column holding the text [default: found by name]."),
    text_pair_column: str | None = Opt(None, "--text-pair-column", help="Column holding the second text [default: found by name]."),
    label_column: str | None = Opt(None, "--label-column", help="Column holding the label [default: found by name]."),
    max_length: int = Opt(256, "--max-length", min=8, help="Tokens per text; longer texts are cut."),
    layer: int = Opt(-1, "--layer", min=-1, help="Layer whose features the label-error probe uses "
                                                 "(0 = embeddings, -1 = last)."),
    pooling: str | None = Opt(None, "--pooling", help="cls, mean, max or last [default: the encoder's]."),
    label_errors: bool = Opt(True, "--label-errors/--no-label-errors",
                             help="Look for likely label errors with a cross-validated probe (runs the encoder)."),
    min_confidence: float = Opt(0.6, "--min-confidence", min=0.0, max=1.0,
                                help="Least probe confidence to flag a label as a likely error."),
    fine_tune: str = Opt("auto", "--fine-tune", help="Ask the encoder fine-tuned on two folds (about one epoch) "
                         "for a second opinion on label errors, flagging only rows both it and the probe call "
                         "mislabelled: on, off, or auto (on up to 10,000 labelled rows)."),
    precision: str = Opt("auto", "--precision", help="Fine-tuned folds: fp32, bf16 or auto."),
    seed: int = Opt(42, "--seed", min=0, help="Random seed (validation split, folds)."),
    quiet: bool = Opt(False, "--quiet", "-q", help="No progress bars or messages on stderr."),
    as_json: bool = Opt(False, "--json", help="Print the report as JSON."),
):
    """Check a data set before training: balance, duplicates, leakage, lengths, likely label errors."""
    setup(quiet or as_json)
    if fine_tune not in ("auto", "on", "off"):
        raise UserError(f"--fine-tune {fine_tune}: expected on, off or auto.")

    r = check_data(data, validation, test, model, text_column, text_pair_column, label_column, max_length,
                   label_errors, seed=seed, min_confidence=min_confidence, layer=layer, pooling=pooling,
                   fine_tune=fine_tune, precision=precision)
    print(json.dumps(r) if as_json else format_report(r))
