"""Approximate (HNSW) against exact search: query time and recall as the corpus grows.

    python -m bench.ann --index IDX --queries QUERIES.jsonl --sizes 5000,100000,300000 --out bench/results/ann

IDX is an exact index written by ``enctune index`` (its vectors and its model); QUERIES a file of query texts
(a BEIR queries.jsonl), embedded by the index's model. Corpora larger than the index are made from its
vectors: each extra row is a real row plus Gaussian noise (sigma 0.05 a dimension), normalised, so the
clusters the encoder made stay. For each size: the graph's build time, the recall@10 that ``enctune index``
records (256 corpus rows as queries) and the recall@10 of the real queries against exact search, and the
milliseconds a single query takes through ``Index.search`` (median of the queries, one at a time, as
``enctune search`` and ``/search`` ask), exact and approximate, with the CPU named.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from .machine import cpu_flags, cpu_model, versions


def grown(vectors: np.ndarray, n: int, seed: int = 0, sigma: float = 0.05) -> np.ndarray:
    """``n`` unit rows: the real ones first, then noisy copies of random real ones."""
    from enctune.retrieval.metrics import normalised

    if n <= len(vectors):
        return vectors[:n]
    rng = np.random.default_rng(seed)
    extra = vectors[rng.integers(len(vectors), size=n - len(vectors))]
    extra = extra + sigma * rng.standard_normal(extra.shape).astype(np.float32)
    return np.concatenate([vectors, normalised(extra.astype(np.float32))])


def one_at_a_time(index, q: np.ndarray, k: int = 10) -> float:
    times = []
    for row in q:
        t0 = time.perf_counter()
        index.search(row[None, :], k)
        times.append((time.perf_counter() - t0) * 1e3)
    return round(statistics.median(times), 3)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--sizes", default="5000,100000,300000")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    from enctune import progress
    from enctune.retrieval import ann, read_index
    from enctune.retrieval.index import Index
    from enctune.retrieval.metrics import top_k
    from enctune.search import load_embedder

    progress.set_quiet(True)
    base = read_index(args.index)
    texts = [json.loads(x)["text"] for x in Path(args.queries).read_text(encoding="utf-8").splitlines() if x.strip()]
    q = load_embedder(base.meta["model"])(texts, 64, progress_bar=False)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        x = grown(base.vectors, n)
        ids = [str(i) for i in range(n)]
        exact = Index(ids, [""] * n, x, {})
        t0 = time.perf_counter()
        graph = ann.build(x)
        build_s = time.perf_counter() - t0
        approx = Index(ids, [""] * n, x, {}, graph)
        truth, _ = top_k(q @ x.T, 10)
        found, _ = ann.search(graph, q, 10)
        recall = float(np.mean([len(set(a) & set(t)) / 10 for a, t in zip(found.tolist(), truth.tolist(),
                                                                           strict=True)]))
        rows.append({"documents": n, "build_s": round(build_s, 1), "recall@10 recorded": round(ann.recall_at_10(graph, x), 4),
                     "recall@10 queries": round(recall, 4), "exact ms/query": one_at_a_time(exact, q),
                     "hnsw ms/query": one_at_a_time(approx, q)})
        print(rows[-1], file=sys.stderr, flush=True)
    flags = cpu_flags()
    machine = {"cpu": cpu_model(), "avx512": "avx512f" in flags, "amx": "amx_tile" in flags, **versions()}
    print(f"{len(texts)} queries, {machine}")
    print("| documents | graph build s | recall@10 recorded (256 corpus rows) | recall@10 (real queries) | exact ms "
          "a query | HNSW ms a query |\n| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['documents']:,} | {r['build_s']} | {r['recall@10 recorded']:.3f} | {r['recall@10 queries']:.3f} | "
              f"{r['exact ms/query']} | {r['hnsw ms/query']} |")
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "results.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
