"""A BEIR-style retrieval folder, read and checked, and the (query, positive) pairs training reads from it.

    folder/corpus.jsonl        {"_id", "title" (optional), "text"} per document
    folder/queries.jsonl       {"_id", "text"} per query
    folder/qrels/<split>.tsv   query-id <tab> corpus-id <tab> score (graded relevance, 0 = judged not relevant),
                               with a header line; splits train, dev (or validation) and test

A document's text is its title and its text joined by a space, as BEIR's sentence-transformers models read
them. Every id a qrels line names must exist; a mistake names the file and line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..data import Table, pick_column, read_table
from ..errors import UserError

# the columns of a query and of a document it should find, by name (case-insensitive)
QUERY_NAMES = ("query", "question", "anchor", "queries")
DOCUMENT_NAMES = ("positive", "pos", "positive_passage", "document", "passage", "doc", "answer_sentence")
QREL_SPLITS = {"train": ("train",), "validation": ("dev", "validation", "valid", "val"), "test": ("test",)}


@dataclass
class Corpus:
    """Documents, queries and per-split judgements of one retrieval folder."""

    path: Path
    ids: list[str]
    texts: list[str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, dict[str, int]]]  # split -> query id -> document id -> relevance
    qrels_files: dict[str, Path] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def text_of(self) -> dict[str, str]:
        return dict(zip(self.ids, self.texts, strict=True))

    def pairs(self, split: str) -> Table | None:
        """One row per relevant judgement of ``split``: {"query", "positive", "query_id", "doc_id"}, each row at
        its qrels line (so messages name it); None when the folder has no such split."""
        if split not in self.qrels:
            return None
        texts, rows, lines = self.text_of(), [], []
        for line, (q, d, rel) in self._lines[split]:
            if rel > 0:
                rows.append({"query": self.queries[q], "positive": texts[d], "query_id": q, "doc_id": d})
                lines.append(line)
        if not rows:
            raise UserError(f"{self.qrels_files[split]}: no judgement with a score above 0; nothing to learn from.")
        return Table(self.qrels_files[split], rows, lines, ["query", "positive", "query_id", "doc_id"])

    _lines: dict = field(default_factory=dict, repr=False)


def is_beir_folder(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and (p / "corpus.jsonl").is_file() and (p / "queries.jsonl").is_file() and (p / "qrels").is_dir()


def _id(table: Table, i: int, row: dict) -> str:
    v = row.get("_id")
    if isinstance(v, bool) or not isinstance(v, (str, int)) or str(v) == "":
        raise UserError(f"{table.where(i)}: no '_id' (expected a string or a whole number).")
    return str(v)


def _documents(path: Path) -> tuple[list[str], list[str]]:
    table = read_table(path)
    ids, texts, seen = [], [], {}
    for i, row in enumerate(table.records):
        d = _id(table, i, row)
        text, title = row.get("text"), row.get("title") or ""
        if not isinstance(text, str) or not isinstance(title, str) or not (title + text).strip():
            raise UserError(f"{table.where(i)}: document '{d}' has no text (expected 'text', and optionally 'title', "
                            "as strings).")
        if d in seen:
            raise UserError(f"{table.where(i)}: document id '{d}' again (first at line {table.lines[seen[d]]}).")
        seen[d] = i
        ids.append(d)
        texts.append(f"{title} {text}".strip())
    return ids, texts


def _queries(path: Path) -> dict[str, str]:
    table = read_table(path)
    out: dict[str, str] = {}
    for i, row in enumerate(table.records):
        q = _id(table, i, row)
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"{table.where(i)}: query '{q}' has no 'text'.")
        if q in out:
            raise UserError(f"{table.where(i)}: query id '{q}' again.")
        out[q] = text
    return out


def _qrels(path: Path, docs: set[str], queries: dict[str, str]) -> list[tuple[int, tuple[str, str, int]]]:
    out = []
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = raw.rstrip("\r").split("\t")
        if not raw.strip() or (n == 1 and fields[0].strip().lower() in ("query-id", "query_id", "qid")):
            continue
        if len(fields) != 3:
            raise UserError(f"{path}, line {n}: {len(fields)} field(s); expected query-id, corpus-id and score "
                            "separated by tabs.")
        q, d, score = (f.strip() for f in fields)
        try:
            rel = int(score)
        except ValueError:
            raise UserError(f"{path}, line {n}, column 'score': '{score}' is not a whole number.") from None
        if q not in queries:
            raise UserError(f"{path}, line {n}: query '{q}' is not in queries.jsonl.")
        if d not in docs:
            raise UserError(f"{path}, line {n}: document '{d}' is not in corpus.jsonl.")
        out.append((n, (q, d, rel)))
    if not out:
        raise UserError(f"{path}: no judgements.")
    return out


def read_beir(folder: str | Path) -> Corpus:
    """The corpus, queries and every split's judgements of a BEIR-style folder. Raises UserError naming the file
    and line of anything that does not read."""
    folder = Path(folder)
    ids, texts = _documents(folder / "corpus.jsonl")
    queries = _queries(folder / "queries.jsonl")
    docs = set(ids)
    corpus = Corpus(folder, ids, texts, queries, {})
    for split, names in QREL_SPLITS.items():
        for name in names:
            f = folder / "qrels" / f"{name}.tsv"
            if f.is_file():
                lines = _qrels(f, docs, queries)
                judged: dict[str, dict[str, int]] = {}
                for _, (q, d, rel) in lines:
                    judged.setdefault(q, {})[d] = rel
                corpus.qrels[split], corpus.qrels_files[split], corpus._lines[split] = judged, f, lines
                break
    if not corpus.qrels:
        raise UserError(f"{folder / 'qrels'}: no train.tsv, dev.tsv or test.tsv.")
    return corpus


ID_NAMES = ("_id", "id", "doc_id", "corpus_id", "docid")


def read_documents(path: str | Path, text_column: str | None = None, id_column: str | None = None
                   ) -> tuple[list[str], list[str]]:
    """(ids, texts) of a file of documents: a BEIR corpus.jsonl (``_id``, ``title``, ``text``: title and text
    joined), or any data file with a text column (found by name unless given) and an optional id column (else
    each document's id is its line number)."""
    table = read_table(path)
    if text_column is None and id_column is None and "_id" in table.columns and "text" in table.columns:
        return _documents(Path(path))
    text = pick_column(table.columns, text_column, ("text", "document", "passage", "content", "body", "abstract"),
                       "document text", "--text-column", table.path)
    ident = pick_column(table.columns, id_column, ID_NAMES, "id", "--id-column", table.path, required=False,
                        exclude=(text,))
    ids, texts, seen = [], [], {}
    for i, row in enumerate(table.records):
        t = row.get(text)
        if not isinstance(t, (str, int, float)) or isinstance(t, bool) or not str(t).strip():
            raise UserError(f"{table.where(i)}, column '{text}': no document text.")
        d = str(row.get(ident)) if ident is not None and row.get(ident) not in (None, "") else str(table.lines[i])
        if d in seen:
            raise UserError(f"{table.where(i)}, column '{ident}': id '{d}' again (first at {table.unit} "
                            f"{table.lines[seen[d]]}).")
        seen[d] = i
        ids.append(d)
        texts.append(str(t))
    return ids, texts
