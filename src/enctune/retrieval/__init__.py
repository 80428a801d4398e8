"""Retrieval without torch: reading a BEIR-style folder, ranking by dot product, and the metrics search is scored by.

``corpus``   a BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) read and checked, and pairs for training
``metrics``  nDCG@k, MRR@k, Recall@k and MAP@k from graded relevance, as trec_eval and BEIR compute them
``index``    an exact (or approximate) index of normalised vectors: built, saved, loaded and searched

The vectors themselves come from an encoder (``api.embed``, ``api.index``); nothing here imports torch, so
``enctune search`` and the server's ``/search`` answer from NumPy alone.
"""

from .corpus import Corpus, is_beir_folder, read_beir, read_documents
from .index import Index, read_index, write_index
from .metrics import corpus_metrics, normalised, rank_by_cosine, retrieval_metrics, top_k

__all__ = ["Corpus", "Index", "corpus_metrics", "read_documents", "read_index", "write_index", "is_beir_folder", "normalised", "rank_by_cosine", "read_beir",
           "retrieval_metrics", "top_k"]
