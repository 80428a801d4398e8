"""Readers: one file (CSV, TSV, JSONL, JSON, Parquet, CoNLL, txt) into a list of records.

Every record is a plain dict; each reader also returns the line (or row) number of
every record so that later checks can name the place of a mistake. Bytes that do not
decode, rows that do not parse and empty files are reported with the file and the line.

Encodings are ``data.encoding``'s (UTF-8, or a UTF-16/32 byte-order mark); CSV and TSV are
``data.delimited``'s (strict quoting, and the TSV dialect rule).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from .delimited import excel_unicode_text, read_delimited
from .encoding import decode
from .table import Table

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".txt": "txt",
    ".conll": "conll",
    ".iob": "conll",
    ".bio": "conll",
}


def detect_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(
            f"{path}: unknown format '{path.suffix or '(no extension)'}'. "
            f"Expected one of: {', '.join(sorted(FORMATS))}."
        )
    return fmt


# Byte-order marks, longest first: the UTF-32 LE mark begins with the UTF-16 LE one.
def read_table(path: str | Path) -> Table:
    """Read one data file into records. Raises UserError for anything unreadable."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file.")
    if path.is_dir():
        raise UserError(f"{path}: is a folder; expected a data file here.")
    fmt = detect_format(path)
    if fmt == "parquet":
        table = _read_parquet(path)
    else:
        raw = path.read_bytes()
        if not raw.strip():
            raise UserError(f"{path}: the file is empty; expected at least one example.")
        text = decode(path, raw)
        if not text.strip():
            raise UserError(f"{path}: the file is empty; expected at least one example.")
        if fmt == "csv" and excel_unicode_text(raw, text):
            fmt = "tsv"
        reader = {"csv": read_delimited, "tsv": read_delimited, "jsonl": _read_jsonl, "json": _read_json,
                  "txt": _read_txt, "conll": _read_conll}[fmt]
        table = reader(path, text, fmt) if fmt in ("csv", "tsv") else reader(path, text)
    if not table.records:
        raise UserError(f"{path}: no examples found; expected at least one row.")
    if not table.columns:
        seen: dict[str, None] = {}
        for r in table.records:
            for k in r:
                seen.setdefault(k, None)
        table.columns = list(seen)
    return table


def _lines(text: str) -> list[str]:
    """Lines split at \\n (\\r\\n and \\r too) only: str.splitlines would also cut inside a line at
    U+2028, form feeds and other separators that JSON strings and plain text may carry."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _json_error(e: Exception) -> str:
    if isinstance(e, json.JSONDecodeError):
        return e.msg
    if isinstance(e, RecursionError):
        return "nested too deeply"
    return str(e).split(";")[0]  # e.g. an integer with more digits than Python converts


def _check_strings(obj, where: str) -> None:
    """A JSON string escape can encode half a UTF-16 pair (\\ud800); no tokenizer takes that."""
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(f"{where}: a string with an unpaired surrogate escape (\\ud800-\\udfff); "
                        "expected valid Unicode text.") from None


def _read_jsonl(path: Path, text: str) -> Table:
    records, lines = [], []
    for n, line in enumerate(_lines(text), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
            raise UserError(f"{path}, line {n}: not valid JSON ({_json_error(e)}); expected one JSON object per "
                            "line.") from None
        if not isinstance(obj, dict):
            raise UserError(f"{path}, line {n}: expected a JSON object per line, found {type(obj).__name__}.")
        if "\\u" in line:
            _check_strings(obj, f"{path}, line {n}")
        records.append(obj)
        lines.append(n)
    return Table(path, records, lines)


def _read_json(path: Path, text: str) -> Table:
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        where = f"{path}, line {e.lineno}" if isinstance(e, json.JSONDecodeError) else str(path)
        raise UserError(f"{where}: not valid JSON ({_json_error(e)}).") from None
    if "\\u" in text:
        _check_strings(obj, str(path))
    if isinstance(obj, dict) and _is_squad(obj):
        return _flatten_squad(path, obj)
    if isinstance(obj, dict):
        lists = [k for k, v in obj.items() if isinstance(v, list)]
        if len(lists) == 1:
            obj = obj[lists[0]]
    if not isinstance(obj, list):
        raise UserError(f"{path}: expected a JSON array of records (objects), found {type(obj).__name__}.")
    for i, r in enumerate(obj):
        if not isinstance(r, dict):
            raise UserError(f"{path}, record {i + 1}: expected a JSON object, found {type(r).__name__}.")
    # JSON arrays have no useful line numbers: number the records instead.
    return Table(path, obj, list(range(1, len(obj) + 1)))


def _is_squad(obj: dict) -> bool:
    data = obj.get("data")
    return isinstance(data, list) and bool(data) and isinstance(data[0], dict) and "paragraphs" in data[0]


def _flatten_squad(path: Path, obj: dict) -> Table:
    """SQuAD-style nested JSON (data -> paragraphs -> qas) into one record per question."""
    records = []
    for a, article in enumerate(obj["data"], start=1):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise UserError(f"{path}, data[{a - 1}]: expected an object with a 'paragraphs' list (SQuAD format).")
        for p, para in enumerate(paragraphs):
            where = f"{path}, data[{a - 1}].paragraphs[{p}]"
            if not isinstance(para, dict) or not isinstance(para.get("context"), str) \
                    or not isinstance(para.get("qas"), list):
                raise UserError(f"{where}: expected an object with a 'context' string and a 'qas' list.")
            for q, qa in enumerate(para["qas"]):
                if not isinstance(qa, dict):
                    raise UserError(f"{where}.qas[{q}]: expected an object with 'question' and 'answers'.")
                answers = qa.get("answers") or []
                if not isinstance(answers, list) or not all(isinstance(x, dict) for x in answers):
                    raise UserError(f"{where}.qas[{q}]: 'answers' must be a list of {{text, answer_start}} objects.")
                records.append({"id": qa.get("id", f"{a}-{p}-{q}"), "title": article.get("title"),
                                "question": qa.get("question"), "context": para["context"],
                                "answers": {"text": [x.get("text") for x in answers],
                                            "answer_start": [x.get("answer_start") for x in answers]}})
    return Table(path, records, list(range(1, len(records) + 1)))


def _read_conll(path: Path, text: str) -> Table:
    """CoNLL column files: one token per line (first column the word, last column its tag), a blank line
    between sentences, ``-DOCSTART-`` lines skipped. One record {tokens, tags} per sentence; its line
    number is the sentence's first line."""
    records, lines = [], []
    tokens, tags, start = [], [], 0
    width = None

    def flush():
        nonlocal tokens, tags
        if tokens:
            records.append({"tokens": tokens, "tags": tags})
            lines.append(start)
        tokens, tags = [], []

    for n, line in enumerate(_lines(text), start=1):
        cols = line.split()
        if not cols:
            flush()
            continue
        if cols[0] == "-DOCSTART-":
            flush()
            continue
        if len(cols) < 2:
            raise UserError(f"{path}, line {n}: one column ('{cols[0][:40]}'); expected a word and its tag "
                            "separated by whitespace (CoNLL format).")
        width = width or len(cols)
        if len(cols) != width:
            raise UserError(f"{path}, line {n}: {len(cols)} columns where earlier lines have {width}.")
        if not tokens:
            start = n
        tokens.append(cols[0])
        tags.append(cols[-1])
    flush()
    return Table(path, records, lines, ["tokens", "tags"])


def _read_txt(path: Path, text: str) -> Table:
    records, lines = [], []
    for n, line in enumerate(_lines(text), start=1):
        if line.strip():
            records.append({"text": line})
            lines.append(n)
    return Table(path, records, lines, ["text"])


def _read_parquet(path: Path) -> Table:
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path) as f:  # one file: much faster than the dataset path of pq.read_table
            t = f.read()
        records = t.to_pylist()
    except Exception as e:  # pyarrow raises several types for a bad file
        raise UserError(f"{path}: not a readable Parquet file ({e}).") from None
    return Table(path, records, list(range(1, len(records) + 1)), list(t.column_names))
