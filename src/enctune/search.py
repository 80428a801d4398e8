"""Search with an encoder: score it on a retrieval folder, index a corpus, answer queries from the index.

    evaluate_retrieval(model, folder)   nDCG@10, MRR@10, Recall@k, MAP@k: the judged queries rank the whole corpus
    index(model, corpus, out)           the corpus's unit vectors, ids and texts in a folder (``retrieval.index``)
    Searcher(index_folder)              the index and its encoder loaded once; ``search(queries, k)`` per call

``model`` is any encoder: a trained run folder (a ``retrieve`` run's embedding, or any run's encoder) or a
pre-trained name or folder. An index records the model that built it, and queries are embedded by that model
with its pooling, so a query and the documents it is compared with are always vectors of one encoder.
"""

from __future__ import annotations

import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import progress
from .errors import UserError
from .model_folder import find_model_folder
from .retrieval import corpus_metrics, read_beir, read_documents, read_index, write_index
from .retrieval.index import check_index_out


@dataclass
class Embedder:
    """What turns texts into a model's vectors: a pre-trained encoder's pooled output, a run's trained encoder,
    or (a run whose product is an embedding, ``retrieve``) that run's whole model, its head's rotation included.
    ``ref`` is what an index records to load it again (a folder's absolute path, or the name)."""

    encoder: Any
    ref: str
    predictor: Any = None

    @property
    def dim(self) -> int:
        return int(self.encoder.hidden_size)

    def __call__(self, texts: list[str], batch_size: int = 256, precision: str = "fp32", what: str = "embed",
                 progress_bar: bool = True) -> np.ndarray:
        from .serve.predictor import embed  # lazy: torch (~2 s)

        texts = list(texts)
        with progress.bar(what, total=len(texts)) if progress_bar else nullcontext(None) as pbar:
            if self.predictor is not None:
                return self.predictor.logits(texts, None, batch_size, progress=pbar)
            return embed(self.encoder, texts, None, None, None, batch_size, precision, progress=pbar)


def load_embedder(model: str | os.PathLike, pooling: str | None = None, max_length: int | None = None) -> Embedder:
    """An ``Embedder`` for a run folder (its trained model) or a pre-trained encoder by name or folder."""
    from .encoders.encoder import Encoder  # lazy: torch (~2 s)
    from .serve.loading import load  # lazy: torch (~2 s)

    p = Path(str(model))
    try:
        folder = find_model_folder(p) if p.is_dir() else None
    except UserError:
        folder = None
    if folder is not None:
        predictor = load(folder)
        embeds = not getattr(predictor.task, "has_head", True)
        return Embedder(predictor.encoder, str(p.resolve()), predictor if embeds else None)
    encoder = Encoder.load(str(model), pooling=pooling, max_length=max_length)
    return Embedder(encoder, str(p.resolve()) if p.exists() else str(model))


def load_reranker(folder: str | os.PathLike):
    """A ``rerank`` run's predictor (a cross-encoder); a UserError for any other kind of model."""
    from .serve.loading import load  # lazy: torch (~2 s)

    predictor = load(folder)
    if not getattr(predictor.task, "reranks", False):
        raise UserError(f"--rerank {folder}: a '{predictor.task.name}' model; reranking needs a model trained with "
                        "--task rerank (it scores a query with a document).")
    return predictor


def reranked(predictor, queries: list[str], candidates: list[list[int]], texts: list[str], k: int) -> list[list[int]]:
    """Each query's first ``k`` candidates (indices into ``texts``) reordered by the cross-encoder's score, the
    rest after them as they were."""
    out = []
    for q, cand in zip(queries, candidates, strict=True):
        head, tail = list(cand[:k]), list(cand[k:])
        scores = [p["score"] for p in predictor.predict([q] * len(head), [texts[j] for j in head])]
        out.append([head[i] for i in np.argsort(-np.asarray(scores), kind="stable")] + tail)
    return out


def evaluate_retrieval(model: str | os.PathLike, folder: str | os.PathLike, batch_size: int = 256,
                       split: str | None = None, dims: int | None = None, rerank: str | os.PathLike | None = None,
                       rerank_k: int = 20) -> dict:
    """nDCG@10, MRR@10, Recall@k and MAP@k of ``model``'s embeddings on a retrieval folder's judged split (test
    when it has one), every query ranking the whole corpus by cosine; with ``dims``, on the vectors' first
    ``dims`` dimensions (what a Matryoshka-trained model keeps when cut); with ``rerank`` (a ``rerank`` run),
    each query's top ``rerank_k`` reordered by that cross-encoder."""
    corpus = read_beir(folder)
    split = split or ("test" if "test" in corpus.qrels else next(iter(corpus.qrels)))
    if split not in corpus.qrels:
        raise UserError(f"{Path(folder) / 'qrels'}: no judgements for the {split} split.")
    embedder = load_embedder(model)
    embed = lambda texts: embedder(texts, batch_size)  # noqa: E731
    if dims is not None and not 1 <= dims <= embedder.dim:
        raise UserError(f"--dims {dims}: the encoder's vectors have {embedder.dim} dimensions.")
    cut = (lambda texts: embed(texts)[:, :dims]) if dims is not None else embed
    reorder = None
    if rerank is not None:
        predictor = load_reranker(rerank)
        reorder = lambda qs, cands: reranked(predictor, qs, cands, corpus.texts, rerank_k)  # noqa: E731
    metrics = corpus_metrics(cut, corpus, split, reorder=reorder)
    extra = {**({"dims": dims} if dims else {}), **({"rerank_k": rerank_k} if rerank is not None else {})}
    return {"n": metrics["queries"], "task": "retrieve", "split": split, **extra, **metrics}


def index(model: str | os.PathLike, corpus: str | os.PathLike, out: str | os.PathLike,
          text_column: str | None = None, id_column: str | None = None, batch_size: int = 256,
          overwrite: bool = False, approximate: str = "auto") -> dict:
    """Embed every document of ``corpus`` (a BEIR corpus.jsonl or any data file) with ``model`` and write the
    index folder ``out``; returns its index.json. Under a launcher (``accelerate launch``, ``torchrun``) each
    process embeds its share of the documents and the first writes the folder. ``approximate`` (auto, hnsw,
    exact): whether the index also holds an approximate graph (``retrieval.ann``; auto: past 250,000
    documents), whose measured recall@10 against exact search is printed and recorded."""
    from . import distributed  # lazy: torch (~2 s), loaded with the encoder anyway
    from .retrieval import ann

    check_index_out(out, overwrite)
    ann.wanted(approximate, 0)  # an unknown kind is refused before minutes of embedding
    ids, texts = read_documents(corpus, text_column, id_column)
    embedder = load_embedder(model)
    rank, _ = distributed.init()
    t0 = time.perf_counter()
    vectors = distributed.gather_rows(len(texts), lambda idx: embedder([texts[i] for i in idx], batch_size,
                                                                       what="index"))
    encoder = embedder.encoder
    meta = {"model": embedder.ref, "pooling": encoder.pooling, "max_length": encoder.max_length,
            "corpus": str(Path(corpus).resolve()), "seconds": round(time.perf_counter() - t0, 3)}
    graph = None
    if rank == 0:
        graph = write_index(out, ids, texts, vectors, meta, overwrite, approximate)
        if graph is not None:
            progress.info(f"approximate index (HNSW): recall@10 {graph['recall@10']:.3f} of exact search with "
                          f"{graph['recall_queries']} of the documents as queries (real queries can find less)")
    return {"count": len(ids), "dim": int(vectors.shape[1]), **meta, "ann": graph}


class Searcher:
    """An index and the encoder that built it, loaded once; ``search`` embeds queries and ranks the index."""

    def __init__(self, folder: str | os.PathLike, model: str | os.PathLike | None = None,
                 rerank: str | os.PathLike | None = None, rerank_k: int = 20):
        self.reranker = load_reranker(rerank) if rerank is not None else None
        self.rerank_k = rerank_k
        self.index = read_index(folder)
        ref = model if model is not None else self.index.meta.get("model")
        if not ref:
            raise UserError(f"{folder}: its index.json names no model; give one with --model.")
        self.embedder = load_embedder(ref, self.index.meta.get("pooling"), self.index.meta.get("max_length"))
        if self.embedder.dim != self.index.vectors.shape[1]:
            raise UserError(f"{folder}: {self.index.vectors.shape[1]}-dimensional vectors, but the model "
                            f"{ref} gives {self.embedder.dim}; search with the model that built it.")
        # the first call builds kernels and caches (~30 ms): paid here, not by the first query
        self.index.search(self.embedder(["warm up"], 64, progress_bar=False), 1)

    def search(self, queries: list[str], k: int = 10, dims: int | None = None) -> tuple[list[list[dict]], dict]:
        """Per query its k best documents ({"id", "score", "text"}), and the milliseconds spent embedding and
        ranking."""
        t0 = time.perf_counter()
        q = self.embedder(list(queries), 64, progress_bar=False)
        t1 = time.perf_counter()
        hits = self.index.search(q, max(k, self.rerank_k) if self.reranker is not None else k, dims)
        t2 = time.perf_counter()
        timing = {"embed_ms": round((t1 - t0) * 1e3, 3), "search_ms": round((t2 - t1) * 1e3, 3)}
        if self.reranker is None:
            return hits, timing
        out = []
        for query, h in zip(queries, hits, strict=True):
            head, tail = h[:self.rerank_k], h[self.rerank_k:]
            scores = [p["score"] for p in self.reranker.predict([query] * len(head), [x["text"] for x in head])]
            order = np.argsort(-np.asarray(scores), kind="stable")
            top = [{**head[i], "retrieval_score": head[i]["score"], "score": round(scores[i], 6)} for i in order]
            out.append((top + [{**x, "retrieval_score": x["score"]} for x in tail])[:k])
        timing["rerank_ms"] = round((time.perf_counter() - t2) * 1e3, 3)
        return out, timing
