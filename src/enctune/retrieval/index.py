"""An index of a corpus's vectors, kept on disk, searched by cosine with nothing but NumPy.

    idx/index.json          {"files", "model", "dim", "count", "normalised": true, ...}: what built it
    idx/vectors.safetensors "vectors": (N, H) float32, unit length
    idx/documents.jsonl     {"id", "text"} per row of the vectors, in order
    idx/ann.faiss           an approximate graph, for corpora past a few hundred thousand documents (``ann``)

Search is exact unless the index holds a graph (``ann``, past 250,000 documents or on request): one (Q, N)
product of unit vectors, then the k largest per row. For N = 5,000 and H = 384
that is 2 MFLOP a query, well under a millisecond of a laptop core; it stays exact up to a few hundred
thousand documents (N x H x 4 bytes: 150 MB at 100,000 x 384). A Matryoshka-trained model's vectors can be
searched on a prefix (``dims``): the prefix is normalised again before the product.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import check_replaceable, staged_folder
from ..errors import UserError
from ..jsonfile import read_json_object
from . import ann
from .metrics import normalised, top_k

MARKER = "index.json"
FILES = ["vectors.safetensors", "documents.jsonl"]
ALLOWED = {*FILES, ann.ANN_FILE}


@dataclass
class Index:
    ids: list[str]
    texts: list[str]
    vectors: np.ndarray  # (N, H) float32, unit rows
    meta: dict
    graph: object | None = None  # the approximate graph (``ann``), when the index has one

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, queries: np.ndarray, k: int = 10, dims: int | None = None) -> list[list[dict]]:
        """Per query vector (rows of (Q, H)), its ``k`` nearest documents, best first: {"id", "score", "text"}."""
        docs, q = self.vectors, np.asarray(queries, dtype=np.float32)
        if dims is not None:
            if not 1 <= dims <= docs.shape[1]:
                raise UserError(f"--dims {dims}: this index holds {docs.shape[1]}-dimensional vectors.")
            docs, q = normalised(docs[:, :dims]), q[:, :dims]
        if self.graph is not None and dims is None:  # the graph was built on the full width
            idx, scores = ann.search(self.graph, normalised(q), min(k, len(self)))
        else:
            idx, scores = top_k(normalised(q) @ docs.T, k)
        return [[{"id": self.ids[j], "score": round(float(s), 6), "text": self.texts[j]}
                 for j, s in zip(row, srow, strict=True) if j >= 0] for row, srow in zip(idx, scores, strict=True)]


def check_index_out(out: str | os.PathLike, overwrite: bool = False) -> None:
    """A UserError unless an index may be written at ``out`` (checked before minutes of embedding): a new or
    empty folder, or an index with ``overwrite``; never a folder holding anything else."""
    out = Path(out)
    if out.is_dir() and (out / MARKER).exists() and not overwrite:
        raise UserError(f"--out {out}: an index is already there; add --overwrite to replace it.")
    check_replaceable(out, MARKER, "--out", "an enctune index", allowed=ALLOWED)


def write_index(out: str | os.PathLike, ids: list[str], texts: list[str], vectors: np.ndarray, meta: dict,
                overwrite: bool = False, approximate: str = "exact") -> dict:
    """Write an index folder whole (a staging folder renamed into place): a folder that is not an index is never
    replaced, and an index only with ``overwrite``. ``approximate`` (``--ann``: auto, hnsw, exact) decides whether
    it also holds a graph (``ann``); returns what index.json says of it (None for none)."""
    from safetensors.numpy import save_file  # lazy: only when an index is written

    check_index_out(out, overwrite)
    if len(set(ids)) != len(ids):
        raise UserError("the corpus names one document id twice; ids must be unique.")
    files, graph_meta = list(FILES), None
    unit = np.ascontiguousarray(normalised(vectors))
    with staged_folder(out) as tmp:
        save_file({"vectors": unit}, str(tmp / "vectors.safetensors"))
        if ann.wanted(approximate, len(ids)):
            graph = ann.build(unit)
            graph_meta = {"kind": "hnsw", "M": ann.M, "ef_construction": ann.EF_CONSTRUCTION,
                          "ef_search": ann.EF_SEARCH, "recall@10": round(ann.recall_at_10(graph, unit), 4),
                          "recall_queries": min(ann.RECALL_QUERIES, len(ids)),
                          "sha256": ann.save(graph, tmp / ann.ANN_FILE)}
            files.append(ann.ANN_FILE)
        with open(tmp / "documents.jsonl", "w", encoding="utf-8") as f:
            for i, t in zip(ids, texts, strict=True):
                f.write(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n")
        full = {"files": files, "count": len(ids), "dim": int(vectors.shape[1]), "normalised": True, **meta,
                "ann": graph_meta}
        (tmp / MARKER).write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
    return graph_meta


def read_index(folder: str | os.PathLike) -> Index:
    """An index folder written by ``write_index``; a UserError names what is missing or inconsistent."""
    from safetensors import SafetensorError  # lazy: only when an index is read
    from safetensors.numpy import load_file

    folder = Path(folder)
    if not (folder / MARKER).is_file():
        raise UserError(f"{folder}: not an enctune index (no {MARKER}); build one with `enctune index`.")
    meta = read_json_object(folder / MARKER, "an index's index.json")
    try:
        vectors = load_file(str(folder / "vectors.safetensors"))["vectors"]
    except (OSError, KeyError, SafetensorError) as e:
        raise UserError(f"{folder / 'vectors.safetensors'}: unreadable ({e}); build the index again.") from None
    ids, texts = [], []
    with open(folder / "documents.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            ids.append(row["id"])
            texts.append(row["text"])
    if vectors.ndim != 2 or len(vectors) != len(ids) or meta.get("count") != len(ids):
        raise UserError(f"{folder}: {len(ids)} documents, {len(vectors)} vectors and a count of {meta.get('count')}; "
                        "the index is damaged: build it again.")
    graph = None
    if isinstance(meta.get("ann"), dict):
        graph = ann.load(folder / ann.ANN_FILE, str(meta["ann"].get("sha256", "")))
    return Index(ids, texts, vectors.astype(np.float32, copy=False), meta, graph)
