"""``enctune index`` and ``enctune search``: a corpus embedded once into a folder, then queried."""

from __future__ import annotations

import json
import sys

import typer

from .. import search as searching
from ..serve.inputs import check_texts
from .app import Opt, app, setup


@app.command()
def index(
    model: str = typer.Argument(..., help="Encoder: a trained run folder (a retrieve run), 'default', a folder or "
                                          "a hub id."),
    corpus: str = Opt(..., "--corpus", help="Documents: a BEIR corpus.jsonl (_id, title, text) or any data file "
                                            "with a text column."),
    out: str = Opt(..., "--out", help="Index folder to write."),
    text_column: str | None = Opt(None, "--text-column", help="Column holding the document [default: found by "
                                                              "name]."),
    id_column: str | None = Opt(None, "--id-column", help="Column holding the document id [default: _id or id, "
                                                          "else the line number]."),
    batch_size: int = Opt(256, "--batch-size", min=1, help="Most texts per batch (batches also hold a token "
                                                           "budget)."),
    overwrite: bool = Opt(False, "--overwrite", help="Replace an index already at --out."),
    ann: str = Opt("auto", "--ann", help="Also build an approximate (HNSW) graph and print its recall@10 against "
                                         "exact search: hnsw, exact, or auto (past 250,000 documents)."),
    quiet: bool = Opt(False, "--quiet", "-q", help="No progress bars or messages on stderr."),
    as_json: bool = Opt(False, "--json", help="Print the index's description as one JSON object."),
):
    """Embed a corpus into an index folder that `enctune search` and `enctune serve --index` answer from."""
    setup(quiet or as_json)
    info = searching.index(model, corpus, out, text_column, id_column, batch_size, overwrite, ann)
    if as_json:
        print(json.dumps(info))
    elif not quiet:
        print(f"wrote {info['count']} x {info['dim']} vectors to {out} ({info['seconds']:.1f} s)", file=sys.stderr)


@app.command()
def search(
    index_folder: str = typer.Argument(..., metavar="INDEX", help="Index folder written by `enctune index`."),
    queries: list[str] = typer.Argument(..., help="One or more queries."),
    top_k: int = Opt(10, "--top-k", "-k", min=1, max=1000, help="Documents per query."),
    dims: int | None = Opt(None, "--dims", min=1, help="Search on the vectors' first DIMS dimensions (a Matryoshka-"
                                                       "trained model) [default: all]."),
    model: str | None = Opt(None, "--model", help="Embed queries with this encoder [default: the index's]."),
    rerank: str | None = Opt(None, "--rerank", help="A rerank run (a cross-encoder): reorder each query's top "
                                                    "--rerank-k hits by its score."),
    rerank_k: int = Opt(20, "--rerank-k", min=1, max=1000, help="Hits per query the reranker reorders."),
    quiet: bool = Opt(False, "--quiet", "-q", help="No messages on stderr."),
    as_json: bool = Opt(False, "--json", help="Print one JSON object: hits per query and the time taken."),
):
    """The documents of an index nearest each query, best first, with their cosine."""
    setup(quiet or as_json)
    check_texts(queries, "query")
    searcher = searching.Searcher(index_folder, model, rerank, rerank_k)
    hits, timing = searcher.search(queries, top_k, dims)
    if as_json:
        print(json.dumps({"results": [{"query": q, "hits": h} for q, h in zip(queries, hits, strict=True)],
                          **timing}, ensure_ascii=False))
        return
    for q, h in zip(queries, hits, strict=True):
        if len(queries) > 1:
            print(f"# {q}")
        for rank, hit in enumerate(h, start=1):
            text = hit["text"] if len(hit["text"]) <= 100 else hit["text"][:97] + "..."
            print(f"{rank:>3}  {hit['score']:.4f}  {hit['id']}  {text}")
    if not quiet:
        reranked = f", reranked in {timing['rerank_ms']:.1f} ms" if "rerank_ms" in timing else ""
        print(f"embedded in {timing['embed_ms']:.1f} ms, searched {len(searcher.index)} documents in "
              f"{timing['search_ms']:.1f} ms{reranked}", file=sys.stderr)
