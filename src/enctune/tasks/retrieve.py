"""``retrieve``: an encoder that finds, for a query, the documents that answer it (a bi-encoder).

Rows hold a query and a document it should find (``{"query", "positive"}``), or the data is a
BEIR-style folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``; see
``retrieval.corpus``), whose relevant judgements become such pairs. Query and document are
encoded apart by the same encoder, u = Enc(q) R, v = Enc(d) R. The model's product is the
embedding: no classifier, only a fixed orthogonal R (``heads.EmbeddingHead``), set before
training to the principal directions of the training texts' vectors (``start_head``), which
changes no cosine at the full width and puts the most variance first. The loss is the
multiple-negatives ranking loss over the batch (``heads.ranking_loss``): each query against its
document and every other document of the batch, scale 20, at the full width and at each
Matryoshka width (``--matryoshka-dims``, 256, 128 and 64 by default where narrower than the
encoder), so that vectors cut to a prefix keep most of their quality: 96.9% of nDCG@10 at 128
of 384 dimensions on squad_small, against 94.0-94.9% for Matryoshka training on the raw
dimensions (BENCHMARKS.md). Defaults: 1 epoch, learning rate 1e-4, batch 32 (a lower rate
keeps more of the encoder's quality on other domains and gains less on this one).

Hard negatives. A ``negative`` column gives each training row a third text w, encoded apart like the
document; the loss contrasts every query with the batch's documents and negatives, S (B, 2B), masking any
that is the query's own document. With ``--negatives 1`` and no such column, each query's negative is mined
before training: the training document the starting encoder ranks highest that is neither its own nor
within 5% of its own's cosine (``retrieval.mining``). Off by default: on squad_small, one seed, mining took
nDCG@10 from 84.9 to 83.4 and the training from 49 to 89 s (the nearest sentences of a paragraph are often
answers too); validation and test pairs never carry negatives.

Metrics. Within one split of pairs: every query ranks the split's distinct documents by cosine,
its own document is the relevant one (``ndcg@10`` primary, MRR@10, Recall@1/10/100, MAP@100).
For a BEIR folder the test figures rank the whole corpus with its graded judgements (the run
step does that; ``retrieval.metrics`` computes as trec_eval does).

Prediction: one text gives its embedding; a query with a document gives their cosine.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..data import LABEL_NAMES, Columns, Examples, pick_column
from ..data.examples import text_str
from ..errors import UserError
from ..retrieval import normalised as normalise
from ..retrieval import retrieval_metrics, top_k
from ..retrieval.corpus import DOCUMENT_NAMES, QUERY_NAMES
from ..retrieval.mining import mine_negatives
from .base import ColumnHints, Prepared, Task, TaskOptions, named_column
from .registry import register

NEGATIVE_NAMES = ("negative", "neg", "hard_negative", "negative_passage")
DOC_ID_NAMES = ("doc_id", "corpus_id", "corpus-id", "positive_id")
MATRYOSHKA = (256, 128, 64)
PCA_TEXTS = 1024  # texts whose vectors set the embedding's rotation (~3 s for the default encoder, 2 CPU cores)
SCALE = 20.0


class RetrieveOptions(TaskOptions):
    dim: int | None = None  # the embedding's width, recorded when the model is built
    matryoshka_dims: list[int] | None = None
    negatives: int | None = None


def parse_dims(value: str | None) -> list[int] | None:
    """``--matryoshka-dims``: "256,128,64", or "none" for the full width alone; None: the default."""
    if value is None:
        return None
    if value.strip().lower() in ("none", "off", ""):
        return []
    try:
        dims = sorted({int(x) for x in value.split(",") if x.strip()}, reverse=True)
    except ValueError:
        raise UserError(f"--matryoshka-dims {value}: expected widths separated by commas (256,128,64) or "
                        "none.") from None
    if any(d < 1 for d in dims):
        raise UserError(f"--matryoshka-dims {value}: widths must be at least 1.")
    return dims


@register
class RetrieveTask(Task):
    name = "retrieve"
    primary_metric = "ndcg@10"
    label_space = "documents"
    min_labels = 0
    detect_order = 20
    preferred_pair_mode = "bi"
    has_head = False
    pairs_optional = True
    whole_batch_loss = True
    pipeline_tag = "sentence-similarity"
    Options: ClassVar[type[TaskOptions]] = RetrieveOptions
    label_expected = "a document id"
    # in-batch negatives: a larger batch is a harder task; a sentence encoder needs a gentle rate
    defaults = {"full": {"epochs": 1, "lr": 1e-4, "batch_size": 32}, "partial": {"epochs": 1, "lr": 2e-4},
                "lora": {"epochs": 1, "lr": 5e-4}}

    def __init__(self, labels=None, label_type="str", class_weights=None, pair_mode="bi", dim=None,
                 matryoshka_dims=None, negatives=None, **options):
        super().__init__([], label_type, class_weights, "bi", **options)
        self.dim = dim
        if negatives is not None and int(negatives) not in (0, 1):
            raise UserError(f"--negatives {negatives}: the retrieve task trains with one hard negative a query (1) or "
                            "none (0).")
        self.negatives = None if negatives is None else int(negatives)
        if isinstance(matryoshka_dims, str):  # as given on the command line
            matryoshka_dims = parse_dims(matryoshka_dims)
        self.matryoshka_dims = list(MATRYOSHKA) if matryoshka_dims is None else list(matryoshka_dims)

    # ---- detection and reading ---------------------------------------------------------------
    @classmethod
    def claims(cls, table, hints: ColumnHints) -> str | None:
        query = named_column(table, hints.text, QUERY_NAMES)
        doc = named_column(table, hints.pair, DOCUMENT_NAMES)
        if query is None or doc is None or query == doc:
            return None
        if hints.label is not None or named_column(table, None, LABEL_NAMES) is not None:
            return None  # a label column: pairs to classify or score, not to retrieve
        return f"columns '{query}' and '{doc}': a query and a document it should find"

    def infer_columns(self, table, text=None, pair=None, label=None, need_label=True) -> Columns:
        query = pick_column(table.columns, text, QUERY_NAMES, "query", "--text-column", table.path)
        doc = pick_column(table.columns, pair, DOCUMENT_NAMES, "document", "--text-pair-column", table.path,
                          required=need_label, exclude=(query,))
        doc_id = pick_column(table.columns, label, DOC_ID_NAMES, "document id", "--label-column", table.path,
                             required=False, exclude=(query, doc or ""))
        return Columns(query, doc, doc_id)

    def read(self, table, columns: Columns, need_label: bool = True) -> Examples:
        texts, docs, ids, rows = [], [], [], []
        negative = named_column(table, None, NEGATIVE_NAMES) if columns.pair is not None and need_label else None
        negatives: list[str] | None = [] if negative is not None else None
        for i, rec in enumerate(table.records):
            q = text_str(rec.get(columns.text))
            if q is None or not q.strip():
                raise UserError(f"{table.where(i)}, column '{columns.text}': no query text.")
            texts.append(q)
            rows.append(i)
            if columns.pair is None:
                continue
            d = text_str(rec.get(columns.pair))
            if d is None or not d.strip():
                raise UserError(f"{table.where(i)}, column '{columns.pair}': no document text (every query needs "
                                "the document it should find).")
            docs.append(d)
            ident = rec.get(columns.label) if columns.label is not None else None
            ids.append(str(ident) if ident is not None and str(ident) != "" else "text:" + d)
            if negatives is not None:
                negatives.append(self._negative(rec.get(negative), table.where(i), negative))
        if columns.pair is None:
            return Examples(texts, None, None, table, rows)
        return Examples(texts, docs, ids if need_label else None, table, rows, negatives=negatives)

    @staticmethod
    def _negative(cell, where: str, column: str) -> str:
        """A row's hard negative: a text, or the first text of a list."""
        first = cell[0] if isinstance(cell, list) and cell else cell
        text = text_str(first)
        if text is None or not text.strip():
            raise UserError(f"{where}, column '{column}': no hard negative text. Give every row one (a document "
                            "that does not answer the query), or drop the column to let them be mined.")
        return text

    def fit(self, train: Examples, column: str | None) -> None:
        if train.pairs is None:
            raise UserError(f"{train.where(0).rsplit(', ', 1)[0]}: the retrieve task trains on a query and a "
                            "document per row.")
        if len(set(train.labels)) < 2:
            raise UserError(f"{train.where(0).rsplit(', ', 1)[0]}: every row names the same document; in-batch "
                            "negatives need at least two documents.")

    def resolve_pair_mode(self, has_pairs: bool) -> None:
        self.pair_mode = "bi"

    # ---- model -------------------------------------------------------------------------------
    def build_head(self, hidden_size: int, dropout: float = 0.1):
        from .heads import EmbeddingHead  # lazy: torch (~2 s), only when a model is built

        self.dim = hidden_size
        return EmbeddingHead(hidden_size)

    def start_head(self, head, encoder, train: Prepared) -> None:
        """The head's rotation: the principal directions of up to PCA_TEXTS of the training queries' and
        documents' unit vectors (centred), most variance first; the rest of the basis completes it. Then each
        training row's hard negative, as the data gives it or mined (``--negatives 1``), joins its tokens."""
        import torch

        tokens = train.tokens
        rng = np.random.default_rng(0)
        take = rng.permutation(len(tokens))[:PCA_TEXTS // 2]
        parts = [tokens.alone().subset(take)] + ([tokens.second.subset(take)] if tokens.second is not None else [])
        x = np.concatenate([next(iter(encoder.encode(t, batch_size=64).values())) for t in parts])
        x = normalise(x)
        _, _, vt = np.linalg.svd(x - x.mean(0), full_matrices=True)
        with torch.no_grad():
            head.rotation.copy_(torch.from_numpy(np.ascontiguousarray(vt.T, dtype=np.float32)))
        self._attach_negatives(encoder, train)

    def _attach_negatives(self, encoder, train: Prepared) -> None:
        """Training rows get a third text, a hard negative: the data's (tokenized by ``prepare``) or, with
        ``--negatives 1`` and none given, the document the starting encoder ranks highest for the query among
        the training documents, neither its own nor within 5% of its own's cosine (``mining.mine_negatives``).
        Targets become (N, 2): the positive's and the negative's document index."""
        import torch

        if train.tokens.third is not None or train.targets is None:  # attached already (a second strategy run)
            return
        given = train.info.get("negatives")
        docs = train.targets.numpy()
        if given is not None:
            third, neg = given, torch.as_tensor(train.info["negative_ids"], dtype=torch.long)
        elif self.negatives == 1:
            first = np.unique(docs, return_index=True)[1]  # a row holding each document
            q = next(iter(encoder.encode(train.tokens.alone(), batch_size=64).values()))
            d = next(iter(encoder.encode(train.tokens.second.subset(first), batch_size=64).values()))
            mined = mine_negatives(q, d, [{int(docs[i])} for i in range(len(docs))], 1)
            # a query with no candidate below the margin (a tiny corpus) takes any other document
            pick = [m[0] if m else int((docs[i] + 1) % len(first)) for i, m in enumerate(mined)]
            third, neg = train.tokens.second.subset(first[pick]), torch.as_tensor(pick, dtype=torch.long)
        else:
            return
        train.tokens.third = third
        train.targets = torch.stack([train.targets, neg], dim=1)

    def prepare(self, encoder, ex: Examples) -> Prepared:
        tokens = encoder.tokenize(ex.texts, ex.pairs, apart=True)
        if ex.labels is None:
            return Prepared(tokens)
        labels = self.encode_labels(ex.labels)
        info = {}
        if ex.negatives is not None and self.negatives != 0:
            # a negative that is some row's document gets that document's index (it is no negative for that row)
            index = {d: int(j) for d, j in zip(ex.pairs, labels.tolist(), strict=True)}
            count = int(labels.max()) + 1
            info = {"negatives": encoder.tokenize(ex.negatives, templated=False),
                    "negative_ids": [index.setdefault(n, count + k) for k, n in enumerate(ex.negatives)]}
        return Prepared(tokens, labels, info)

    def encode_labels(self, labels: list):
        import torch

        index: dict[str, int] = {}
        return torch.tensor([index.setdefault(x, len(index)) for x in labels], dtype=torch.long)

    def loss(self, logits, targets):
        """logits [u; v] (B, 2H) with targets (B,) document indices, or [u; v; w] (B, 3H) with (B, 2): the
        positive's and the hard negative's."""
        from .heads import ranking_loss  # lazy: torch (~2 s)

        if targets.ndim == 2:
            u, v, w = logits.chunk(3, dim=-1)
            return ranking_loss(u, v, targets[:, 0], SCALE, tuple(self.matryoshka_dims), w, targets[:, 1])
        u, v = logits.chunk(2, dim=-1)
        return ranking_loss(u, v, targets, SCALE, tuple(self.matryoshka_dims))

    # ---- evaluation and decoding -------------------------------------------------------------
    def _split(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if logits.ndim != 2 or logits.shape[1] % 2:
            raise UserError("the retrieve task scores a query with its document; these inputs have no document.")
        h = logits.shape[1] // 2
        return logits[:, :h], logits[:, h:]

    def metrics(self, logits: np.ndarray, targets: np.ndarray, dims: int | None = None) -> dict:
        """Each query ranks the split's distinct documents; its own is the relevant one."""
        u, v = self._split(logits)
        if dims is not None:
            u, v = u[:, :dims], v[:, :dims]
        targets = np.asarray(targets)
        ids, first = np.unique(targets, return_index=True)
        idx, _ = top_k(normalise(u) @ normalise(v[first]).T, 100)
        ranked = {f"q{i}": [f"d{ids[j]}" for j in row] for i, row in enumerate(idx)}
        qrels = {f"q{i}": {f"d{t}": 1} for i, t in enumerate(targets)}
        out = retrieval_metrics(ranked, qrels)
        out["documents"] = len(ids)
        return out

    def score(self, logits, targets) -> float:
        return float(self.metrics(logits, targets)["ndcg@10"])

    def decode(self, logits: np.ndarray) -> list[dict]:
        if self.dim is not None and logits.shape[1] == 2 * self.dim:
            u, v = self._split(logits)
            cos = np.sum(normalise(u) * normalise(v), axis=1)
            return [{"score": float(c)} for c in cos]
        return [{"embedding": [float(x) for x in row]} for row in np.asarray(logits, dtype=np.float32)]

    def summary(self, m: dict) -> str:
        return f"nDCG@10 {m['ndcg@10']:.4f}  MRR@10 {m['mrr@10']:.4f}  Recall@10 {m['recall@10']:.4f}"

    def describe(self, p: dict) -> str:
        if "score" in p:
            return f"{p['score']:.4f}"
        return "[" + ", ".join(f"{x:.4f}" for x in p["embedding"][:4]) + f", ...] ({len(p['embedding'])} dims)"

    def config(self) -> dict:
        return {**super().config(), "labels": [],
                "task_options": {**self.options, "dim": self.dim, "matryoshka_dims": self.matryoshka_dims,
                                 "negatives": self.negatives}}
