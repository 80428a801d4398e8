"""``rerank``: a cross-encoder that scores how well a document answers a query, to reorder a search's top hits.

Query and document are read together as one input (``query [SEP] document``), so every layer compares them:
slower than a bi-encoder (one pass per pair, nothing precomputed), and more exact, which is why it reorders
only a bi-encoder's top k (``enctune search --rerank``). The head is linear to one logit; the loss is binary
cross-entropy on relevance > 0.

Rows are judged pairs (``{"query", "document", "label"}``, the label a graded relevance, 0 for not relevant),
or positives alone (``{"query", "positive"}`` or a BEIR-style folder, with ``--task rerank``): then each
query gets ``--negatives`` hard negatives (4) mined among the split's documents by the encoder's own pooled
vectors before training (``retrieval.mining``: the best-ranked documents that are not its positives, skipping
any within 5% of the positive's score, which is often an unlabelled positive).

Metrics: each query ranks its candidates (its judged documents, or positives and mined negatives) by the
logit: nDCG@10 (primary), MRR@10, Recall@k and MAP@k, as ``retrieval.metrics`` computes them.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..data import LABEL_NAMES, Columns, Examples, pick_column
from ..data.examples import text_str
from ..errors import UserError
from ..retrieval import retrieval_metrics
from ..retrieval.corpus import DOCUMENT_NAMES, QUERY_NAMES
from ..retrieval.mining import mine_negatives
from .base import ColumnHints, Prepared, Task, TaskOptions, named_column
from .registry import register

RELEVANCE_NAMES = (*LABEL_NAMES, "relevance", "score", "grade")


class RerankOptions(TaskOptions):
    negatives: int | None = None


@register
class RerankTask(Task):
    name = "rerank"
    primary_metric = "ndcg@10"
    label_space = "documents"
    min_labels = 0
    detect_order = 15
    reranks = True
    Options: ClassVar[type[TaskOptions]] = RerankOptions
    label_expected = "a relevance grade (a whole number, 0 for not relevant)"
    defaults = {"full": {"epochs": 1, "lr": 2e-5, "batch_size": 16}}

    def __init__(self, labels=None, label_type="int", class_weights=None, pair_mode="cross", negatives=None,
                 **options):
        super().__init__([], "int", class_weights, "cross", **options)
        self.negatives = 4 if negatives is None else int(negatives)

    @classmethod
    def claims(cls, table, hints: ColumnHints) -> str | None:
        query = named_column(table, hints.text, ("query",))
        doc = named_column(table, hints.pair, ("document", "passage", "doc"))
        label = named_column(table, hints.label, RELEVANCE_NAMES)
        if query is None or doc is None or label is None:
            return None
        return f"columns '{query}', '{doc}' and '{label}': judged query-document pairs"

    def infer_columns(self, table, text=None, pair=None, label=None, need_label=True) -> Columns:
        query = pick_column(table.columns, text, QUERY_NAMES, "query", "--text-column", table.path)
        doc = pick_column(table.columns, pair, DOCUMENT_NAMES, "document", "--text-pair-column", table.path,
                          exclude=(query,))
        rel = pick_column(table.columns, label, RELEVANCE_NAMES, "relevance", "--label-column", table.path,
                          required=False, exclude=(query, doc))
        return Columns(query, doc, rel)

    def parse_label(self, value):
        try:
            v = float(value)
        except (TypeError, ValueError):
            return None
        return int(v) if v.is_integer() and v >= 0 else None

    def read(self, table, columns: Columns, need_label: bool = True) -> Examples:
        texts, docs, rels = [], [], []
        for i, rec in enumerate(table.records):
            for col, out in ((columns.text, texts), (columns.pair, docs)):
                t = text_str(rec.get(col))
                if t is None or not t.strip():
                    raise UserError(f"{table.where(i)}, column '{col}': no text.")
                out.append(t)
            if columns.label is not None and need_label:
                r = self.parse_label(rec.get(columns.label))
                if r is None:
                    raise UserError(f"{table.where(i)}, column '{columns.label}': '{rec.get(columns.label)}' is not "
                                    f"{self.label_expected}.")
                rels.append(r)
        labels = (rels if columns.label is not None else [1] * len(texts)) if need_label else None
        return Examples(texts, docs, labels, table, list(range(len(table.records))))

    def fit(self, train: Examples, column: str | None) -> None:
        path = train.where(0).rsplit(", ", 1)[0]
        if not any(r > 0 for r in train.labels):
            raise UserError(f"{path}: no row is relevant (every grade is 0).")
        if self.negatives == 0 and all(r > 0 for r in train.labels):
            raise UserError(f"{path}: every row is relevant and --negatives is 0, so there is nothing to tell "
                            "them from: give judged rows with 0 grades, or let negatives be mined (--negatives 4).")

    def resolve_pair_mode(self, has_pairs: bool) -> None:
        self.pair_mode = "cross"

    def build_head(self, hidden_size: int, dropout: float = 0.1):
        from .heads import linear_head  # lazy: torch (~2 s), only when a model is built

        return linear_head(hidden_size, 1, dropout, "cross")

    def prepare(self, encoder, ex: Examples) -> Prepared:
        """Tokens of every (query, document) candidate; with positives alone, mined negatives join them."""
        if ex.labels is None:
            return Prepared(encoder.tokenize(ex.texts, ex.pairs))
        texts, docs, rels = list(ex.texts), list(ex.pairs), list(ex.labels)
        if self.negatives > 0 and all(r > 0 for r in rels):
            texts, docs, rels = self._with_negatives(encoder, texts, docs, rels)
        groups: dict[str, int] = {}
        group = [groups.setdefault(q, len(groups)) for q in texts]
        tokens = encoder.tokenize(texts, docs)
        return Prepared(tokens, self.encode_labels(rels), {"group": group, "relevance": rels, "documents": docs})

    def _with_negatives(self, encoder, texts, docs, rels):
        queries = list(dict.fromkeys(texts))
        pool = list(dict.fromkeys(docs))
        where = {d: j for j, d in enumerate(pool)}
        positives = {q: set() for q in queries}
        for q, d in zip(texts, docs, strict=True):
            positives[q].add(where[d])
        vec = {}
        for name, items in (("q", queries), ("d", pool)):
            out = encoder.encode(encoder.tokenize(items, templated=False), batch_size=64)
            vec[name] = next(iter(out.values()))
        mined = mine_negatives(vec["q"], vec["d"], [positives[q] for q in queries], self.negatives)
        for q, negs in zip(queries, mined, strict=True):
            for j in negs:
                texts.append(q)
                docs.append(pool[j])
                rels.append(0)
        return texts, docs, rels

    def encode_labels(self, labels: list):
        import torch

        return torch.tensor([[1.0 if r > 0 else 0.0] for r in labels])

    def loss(self, logits, targets):
        import torch.nn.functional as F

        return F.binary_cross_entropy_with_logits(logits.float(), targets)

    def evaluate_outputs(self, outputs, prepared: Prepared, ex: Examples) -> dict:
        scores = np.asarray(outputs, dtype=np.float64)[:, 0]
        info = prepared.info
        ranked: dict[str, list[str]] = {}
        qrels: dict[str, dict[str, int]] = {}
        for i in np.argsort(-scores, kind="stable"):
            q, d = f"q{info['group'][i]}", f"d{i}"
            ranked.setdefault(q, []).append(d)
            qrels.setdefault(q, {})[d] = int(info["relevance"][i])
        return {**retrieval_metrics(ranked, qrels), "candidates": len(scores)}

    def score_outputs(self, outputs, prepared: Prepared, ex: Examples) -> float:
        return float(self.evaluate_outputs(outputs, prepared, ex)["ndcg@10"])

    def decode(self, logits: np.ndarray) -> list[dict]:
        return [{"score": float(row[0])} for row in np.asarray(logits, dtype=np.float64)]

    def summary(self, m: dict) -> str:
        return f"nDCG@10 {m['ndcg@10']:.4f}  MRR@10 {m['mrr@10']:.4f}  ({m['candidates']} candidates)"

    def describe(self, p: dict) -> str:
        return f"{p['score']:.4f}"

    def config(self) -> dict:
        return {**super().config(), "labels": [], "label_type": "int",
                "task_options": {**self.options, "negatives": self.negatives}}
