"""Hard negatives: for each query, documents the current encoder ranks high that are not its positives.

A document the encoder puts above (or very near) the query's own positive is often an unlabelled positive: a
second sentence that answers too, a near-duplicate. So candidates scoring above ``margin`` times the positive's
cosine are skipped, and the next ``n`` are kept (``margin`` 0.95: within 5% of the positive's score is too
close to call a negative).
"""

from __future__ import annotations

import numpy as np

from .metrics import normalised, top_k


def mine_negatives(queries: np.ndarray, documents: np.ndarray, positives: list[set[int]], n: int,
                   margin: float = 0.95, depth: int = 50) -> list[list[int]]:
    """Per query (rows of ``queries`` (Q, H)), up to ``n`` indices into ``documents`` (D, H): the best-ranked
    documents that are not among its ``positives`` and score below ``margin`` x its best positive's cosine."""
    q, d = normalised(queries), normalised(documents)
    idx, scores = top_k(q @ d.T, min(depth + n, len(d)))
    out = []
    for i, (row, srow) in enumerate(zip(idx, scores, strict=True)):
        pos = positives[i]
        bar = margin * max(float(q[i] @ d[j]) for j in pos) if pos else np.inf
        out.append([int(j) for j, s in zip(row, srow, strict=True) if j not in pos and s < bar][:n])
    return out
