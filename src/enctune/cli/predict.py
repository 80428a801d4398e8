"""``enctune predict``, ``enctune evaluate`` and ``enctune embed``: prediction from a run folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from .. import api
from ..atomic import atomic_write
from ..data import load_texts
from ..data.writers import check_row_format, write_rows
from ..errors import UserError
from ..serve.inputs import check_texts
from ..tasks import TASKS
from .app import Opt, app, main_process, setup

BATCH_HELP = "Most texts per batch (batches also hold a token budget)."
EMBED_FORMATS = (".npy", ".parquet", ".jsonl")


@app.command()
def evaluate(
    run: str = typer.Argument(..., help="Run folder (or its model/ folder)."),
    data: str = Opt(..., "--data", help="Labelled file to score."),
    text_column: str | None = Opt(None, "--text-column", help="Column holding the text [default: the run's]."),
    text_pair_column: str | None = Opt(None, "--text-pair-column", help="Column holding the second text "
                                                                        "[default: the run's]."),
    label_column: str | None = Opt(None, "--label-column", help="Column holding the label [default: the run's]."),
    batch_size: int = Opt(256, "--batch-size", min=1, help=BATCH_HELP),
    rerank: str | None = Opt(None, "--rerank", help="Retrieval folders: reorder each query's top --rerank-k by "
                                                    "this rerank run."),
    rerank_k: int = Opt(20, "--rerank-k", min=1, max=100, help="Hits per query the reranker reorders."),
    quiet: bool = Opt(False, "--quiet", "-q", help="No progress bars or messages on stderr."),
    as_json: bool = Opt(False, "--json", help="Print the metrics as one JSON object."),
):
    """Score a trained model on a labelled file; on a retrieval folder (corpus.jsonl, queries.jsonl, qrels/), any
    encoder: its judged queries rank the whole corpus."""
    setup(quiet or as_json)

    m = api.evaluate(run, data, text_column, text_pair_column, label_column, batch_size, rerank, rerank_k)
    if as_json:
        print(json.dumps(m))
        return
    print(f"examples {m['n']}  {TASKS[m['task']]().summary(m)}" + (f"  ECE {m['ece']:.4f}" if "ece" in m else ""))
    rows = m.get("per_class") or m.get("per_label") or m.get("per_type") or {}
    if rows:
        print(f"{'label':<20} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}")
        for lab, s in rows.items():
            print(f"{lab:<20} {s['precision']:>9.4f} {s['recall']:>9.4f} {s['f1']:>9.4f} {s['support']:>8}")


@app.command()
def predict(
    run: str = typer.Argument(..., help="Run folder (or its model/ folder, or an ONNX export)."),
    texts: list[str] | None = typer.Argument(None, help="Texts to predict on (questions, for extract)."),
    pair: list[str] | None = Opt(None, "--pair", help="The second text of each inline text (its context, for "
                                                      "extract); repeat once per text."),
    input_file: str | None = Opt(None, "--input", help="File of texts (jsonl, csv, tsv, json, parquet, txt)."),
    output: str | None = Opt(None, "--output", help="Write predictions here: .jsonl, .csv or .parquet, one row per "
                                                    "text with the input's other columns (an id...) carried over."),
    include_text: bool = Opt(False, "--include-text", help="Keep the text columns in the output rows too."),
    text_column: str | None = Opt(None, "--text-column", help="Column holding the text [default: found by name]."),
    text_pair_column: str | None = Opt(None, "--text-pair-column", help="Column holding the second text "
                                                                        "[default: found by name]."),
    batch_size: int = Opt(256, "--batch-size", min=1, help=BATCH_HELP),
    precision: str | None = Opt(None, "--precision", help="fp32, bf16, int8 or fastest [default: fp32; an ONNX "
                                                            "export: its int8 model when it has one]."),
    abstain_below: float | None = Opt(None, "--abstain-below", help="Label 'unsure' when the top (calibrated) "
                                                                    "probability is below this [default: never]."),
    quiet: bool = Opt(False, "--quiet", "-q", help="No progress bars or messages on stderr."),
    as_json: bool = Opt(False, "--json", help="Print a JSON array, one object per text."),
):
    """Predict labels (and calibrated probabilities) for texts given inline or in a file."""
    setup(quiet or as_json)

    if abstain_below is not None and not 0 < abstain_below <= 1:
        raise UserError(f"--abstain-below {abstain_below}: expected a probability in (0, 1].")
    if texts and input_file:
        raise UserError("give texts on the command line or --input FILE, not both.")
    if not texts and not input_file:
        raise UserError("nothing to predict: give texts, or --input FILE.")
    if texts:  # before loading the model: an argument that is not UTF-8 arrives as lone surrogates

        check_texts(texts, "texts")
        check_texts(pair or [], "--pair")
    if output:
        check_row_format(output)
    if input_file:
        preds = api.predict_file(run, input_file, text_column, text_pair_column, batch_size, precision,
                                 abstain_below, include_text)
        shown, task = None, None
    else:
        model = api.load(run, precision=precision)
        preds = model.predict(texts, pair or None, batch_size=batch_size, abstain_below=abstain_below)
        shown, task = texts, model.task
    if not main_process():  # under a launcher every process predicted its share; one writes
        return
    if output:
        write_rows(output, preds if input_file else [{"text": t, **p} for t, p in zip(texts, preds, strict=True)])
        if not as_json and not quiet:
            print(f"wrote {len(preds)} predictions to {output}", file=sys.stderr)
    if as_json:
        print(json.dumps(preds))
    elif not output:
        for i, p in enumerate(preds):
            head = f"{shown[i]!r}: " if shown else ""
            print(f"{head}{task.describe(p) if task is not None else json.dumps(p)}")


@app.command()
def embed(
    model: str = Opt("default", "--model", help="Encoder ('default', a folder, a hub id) or a trained run folder."),
    input_file: str = Opt(..., "--input", help="File of texts (jsonl, csv, tsv, json, parquet, txt)."),
    output: str = Opt(..., "--output", help="Where to write vectors: .npy, .parquet or .jsonl."),
    text_column: str | None = Opt(None, "--text-column", help="Column holding the text [default: found by name]."),
    text_pair_column: str | None = Opt(None, "--text-pair-column", help="Column holding the second text "
                                                                        "[default: found by name]."),
    layer: int | None = Opt(None, "--layer", help="0 = embeddings, -1 = last [default: the model's]."),
    pooling: str | None = Opt(None, "--pooling", help="cls, mean, max or last [default: the model's]."),
    max_length: int | None = Opt(None, "--max-length", min=8, help="Tokens per text [default: the model's]."),
    batch_size: int = Opt(256, "--batch-size", min=1, help=BATCH_HELP),
    quiet: bool = Opt(False, "--quiet", "-q", help="No progress bars or messages on stderr."),
):
    """Write pooled sequence representations of every text."""
    setup(quiet)

    suffix = Path(output).suffix.lower()
    if suffix not in EMBED_FORMATS:
        raise UserError(f"--output {output}: unknown format; expected one of {', '.join(EMBED_FORMATS)}.")
    ex = load_texts(input_file, text_column, text_pair_column)
    vectors = api.embed(model, ex, layer=layer, pooling=pooling, max_length=max_length, batch_size=batch_size)
    if not main_process():  # under a launcher every process embedded its share; one writes
        return
    atomic_write(output, lambda tmp: _write_vectors(tmp, suffix, ex.texts, vectors))
    if not quiet:
        print(f"wrote {vectors.shape[0]} x {vectors.shape[1]} vectors to {output}", file=sys.stderr)


def _write_vectors(path: str, suffix: str, texts: list[str], vectors) -> None:
    import numpy as np

    if suffix == ".npy":
        with open(path, "wb") as f:
            np.save(f, vectors, allow_pickle=False)
    elif suffix == ".parquet":
        import pyarrow as pa  # lazy: pyarrow (~0.3 s) only for Parquet output
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"text": texts, "embedding": list(vectors)}), path)
    else:
        with open(path, "w", encoding="utf-8") as f:
            for t, v in zip(texts, vectors, strict=False):
                f.write(json.dumps({"text": t, "embedding": [round(float(x), 7) for x in v]}) + "\n")
