"""Readers: one file (CSV, TSV, JSONL, JSON, Parquet, CoNLL, txt) into a list of records.

Every record is a plain dict; each reader also returns the line (or row) number of
every record so that later checks can name the place of a mistake. Bytes that do not
decode, rows that do not parse and empty files are reported with the file and the line.

Encodings. Text files are UTF-8, with or without a byte-order mark. A UTF-16 (LE or BE)
or UTF-32 byte-order mark says the file is in that encoding and it is decoded as such:
Excel's "Unicode text" export is UTF-16 LE with a BOM (and tab-separated). Without a
BOM nothing but UTF-8 is assumed: a file with NUL bytes in every other position looks
like UTF-16 and is refused with a message that says so, and other bytes that are not
UTF-8 are refused with the line, the byte and iconv advice for the usual sources
(cp1252, latin1, Shift-JIS, GBK); no encoding is guessed, since a wrong guess turns
text into other text without a trace.

CSV is parsed by the csv module in strict mode: a quote that opens a field must close it
(``"a"b`` is an error naming the line, not the text ``ab``), and the field size limit is
raised to the largest the platform accepts, so a cell of any length loads as it would
from JSONL (the default limit, 131,072 characters, is a guard for untrusted streams
that does not fit a file the user chose to train on). A .csv file in UTF-16 or UTF-32
(with a byte-order mark) whose header line holds tabs and no comma or quote is read as
TSV: that is Excel's "Unicode text" export, renamed. Lines end at \n (a \r before it is
dropped, a lone \r elsewhere is text); a file with no \n at all ends its lines at \r.

TSV comes in two dialects that the bytes alone do not always tell apart. Unquoted TSV
(GLUE, pandas with QUOTE_NONE, ``"\\t".join``) takes every character literally, so a
text may start with a quote; quoted TSV (``csv.writer(delimiter="\\t")``, pandas
``to_csv(sep="\\t")``) quotes fields that hold a tab, a newline or a quote, and such a
field can span lines. The rule:

1. Split each physical line on tabs. When every non-blank line gives the header's
   number of fields, the file is read line by line: a field is unquoted only when it is
   a complete, valid CSV-quoted field (starts and ends with ``"``, every inner quote
   doubled); any other field, ``"the movie`` included, is taken as it stands.
2. Otherwise (a line with another field count) the file needs CSV quoting across lines:
   it is parsed with the csv module in strict mode, and a record that still does not
   parse, or has the wrong field count, is an error naming its line.
3. One exception to 1: when a field opens a quote it does not close and the file shows
   a quoting writer (a header line exactly as QUOTE_ALL writes it, or a quoted field
   holding an escaped quote ``""``), the strict CSV reading is used if it parses to one
   width everywhere.

What this gives up, measured by writing random rows and reading them back: an unquoted
text that is itself a valid quoted field (``"hi"``) loses its quotes, and quoted fields
whose tabs and newlines leave every line with the header's number of tab-separated
fields (a text "a<TAB>b<NEWLINE>c" in a two-column file; any text spanning lines in a
one-column file) are read line by line when nothing else in the file shows quoting.
Every misread in that measurement was one of these two; QUOTE_ALL files and quoted
files with any other layout read back exactly. Both are rare next to texts that start
with a quote in unquoted TSV, which the csv module alone merged with the lines after
them; texts with tabs and newlines belong in CSV, JSONL or Parquet.
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError

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


@dataclass
class Table:
    """Records read from one file, with the line number each came from."""

    path: Path
    records: list[dict]
    lines: list[int]
    columns: list[str] = field(default_factory=list)

    @property
    def unit(self) -> str:
        """What a record's number counts: lines of a text file, rows of a Parquet file."""
        return "row" if self.path.suffix.lower() in (".parquet", ".pq") else "line"

    def where(self, i: int) -> str:
        """'file, line N' for record i, as error messages name it."""
        return f"{self.path}, {self.unit} {self.lines[i]}"


def detect_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(
            f"{path}: unknown format '{path.suffix or '(no extension)'}'. "
            f"Expected one of: {', '.join(sorted(FORMATS))}."
        )
    return fmt


# Byte-order marks, longest first: the UTF-32 LE mark begins with the UTF-16 LE one.
BOMS = (
    (b"\x00\x00\xfe\xff", "UTF-32 BE", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "UTF-32 LE", "utf-32-le"),
    (b"\xef\xbb\xbf", "UTF-8", "utf-8"),
    (b"\xfe\xff", "UTF-16 BE", "utf-16-be"),
    (b"\xff\xfe", "UTF-16 LE", "utf-16-le"),
)
ICONV_ADVICE = ("Convert it to UTF-8 with iconv -f ENCODING -t utf-8 IN > OUT, where ENCODING is the one it was "
                "saved in: cp1252 for Windows and Excel 'ANSI' files, latin1 for ISO-8859-1, shift_jis for Japanese, "
                "gbk or big5 for Chinese ('file -i IN' or 'uchardet IN' can tell).")


def _decode(path: Path, raw: bytes) -> str:
    """The file's text: decoded as its byte-order mark says, else as UTF-8 (see the module docstring)."""
    name, codec, bom = "UTF-8", "utf-8", b""
    for mark, mark_name, mark_codec in BOMS:
        if raw.startswith(mark):
            name, codec, bom = mark_name, mark_codec, mark
            break
    else:
        _refuse_bare_utf16(path, raw)
    body = raw[len(bom):]
    try:
        return body.decode(codec)
    except UnicodeDecodeError as e:
        line = body[: e.start].decode(codec, "replace").count("\n") + 1
        if codec == "utf-8":
            raise UserError(f"{path}, line {line}: bytes that are not UTF-8 (byte 0x{body[e.start]:02x} at offset "
                            f"{len(bom) + e.start}, in: {_around(body, e.start)}); the file is in another encoding. "
                            f"{ICONV_ADVICE}") from None
        raise UserError(f"{path}, line {line}: not valid {name} ({e.reason} at offset {len(bom) + e.start}), though "
                        f"the file starts with a {name} byte-order mark. Export it again, or keep what decodes: "
                        f"iconv -c -f {name.replace(' ', '')} -t utf-8 IN > OUT.") from None


def _around(body: bytes, at: int) -> str:
    """The bytes around ``at`` on their line, quoted, with undecodable bytes as \\xNN: where to look."""
    start = max(body.rfind(b"\n", 0, at) + 1, at - 30)
    end = body.find(b"\n", at)
    end = min(len(body) if end < 0 else end, at + 30)
    shown = body[start:end].decode("utf-8", "backslashreplace")
    return '"' + shown.replace("\t", "\\t").replace("\r", "\\r") + '"'


def _refuse_bare_utf16(path: Path, raw: bytes) -> None:
    """UTF-16 without a byte-order mark: text in the Latin range puts a NUL in every other byte (the high byte,
    second in LE, first in BE). UTF-8 text has no NULs, so NULs at one parity, in at least a quarter of the
    pairs and four times as many as at the other, mean UTF-16; other NULs are left to the readers."""
    sample = raw[:4096]
    if b"\x00" not in sample:
        return
    pairs = len(sample) // 2
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    for high, low, order in ((odd, even, "LE"), (even, odd, "BE")):
        if high >= max(2, pairs // 4) and low * 4 <= high:
            raise UserError(f"{path}: looks like UTF-16 {order} without a byte-order mark (a NUL byte in every "
                            f"other position); expected UTF-8. Convert it: iconv -f utf-16{order.lower()} -t utf-8 "
                            "IN > OUT (or save it again as UTF-8; in Excel, as 'CSV UTF-8').")


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
        text = _decode(path, raw)
        if not text.strip():
            raise UserError(f"{path}: the file is empty; expected at least one example.")
        if fmt == "csv" and _excel_unicode_text(raw, text):
            fmt = "tsv"
        reader = {"csv": _read_delimited, "tsv": _read_delimited, "jsonl": _read_jsonl, "json": _read_json,
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


def _read_delimited(path: Path, text: str, fmt: str) -> Table:
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise UserError(f"{path}, line {line}: contains a NUL byte; expected plain text {fmt.upper()}.")
    lines = _physical_lines(text)
    rows = _tsv_rows(path, lines) if fmt == "tsv" else _csv_rows(path, lines, ",")
    if not rows:
        raise UserError(f"{path}: the file is empty; expected a header line and rows.")
    header = [h.strip() for h in rows[0][1]]
    if not any(header):
        raise UserError(f"{path}, line 1: the header is empty; expected column names on the first line.")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise UserError(f"{path}, line 1: column names appear twice: {', '.join(dupes)}.")
    records, numbers = [], []
    for n, row in rows[1:]:
        if _blank(row):
            continue
        if len(row) != len(header):
            raise UserError(
                f"{path}, line {n}: {len(row)} fields, but the header has {len(header)} "
                f"({', '.join(header)}). Quote fields that contain '{'TAB' if fmt == 'tsv' else ','}'."
            )
        records.append(dict(zip(header, row, strict=True)))
        numbers.append(n)
    return Table(path, records, numbers, header)


def _excel_unicode_text(raw: bytes, text: str) -> bool:
    """Excel's "Unicode text" export, renamed .csv: UTF-16 with a byte-order mark, tabs between the columns.
    Told by a UTF-16 or UTF-32 mark and a header line with tabs but no comma or quote. Only such files are
    sniffed: in UTF-8 a one-column CSV may name its column "x<TAB>y" (csv.writer leaves the tab unquoted)."""
    header = _chomp(_physical_lines(text)[0])
    wide = any(raw.startswith(mark) for mark, name, _ in BOMS if name != "UTF-8")
    return wide and "\t" in header and "," not in header and '"' not in header


def _physical_lines(text: str) -> list[str]:
    """Lines with their ends. Split at \\n only (a \\r\\n end keeps its \\r, which readers drop), so that a lone
    \\r inside unquoted text stays text; a file with no \\n at all is split at \\r (classic Mac line ends)."""
    end = "\n" if "\n" in text or "\r" not in text else "\r"
    parts = text.split(end)
    return [p + end for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _chomp(line: str) -> str:
    return line.removesuffix("\n").removesuffix("\r")


def _blank(fields: list[str]) -> bool:
    return all(not f.strip() for f in fields)


def _is_quoted(field: str) -> bool:
    """A complete CSV-quoted field: quotes at both ends and every quote between them doubled."""
    return len(field) >= 2 and field[0] == field[-1] == '"' and '"' not in field[1:-1].replace('""', "")


def _unquote(field: str) -> str:
    return field[1:-1].replace('""', '"') if _is_quoted(field) else field


def _widen_csv_fields() -> None:
    """Lift the csv module's field size limit (131,072 characters) to the largest value the platform takes:
    sys.maxsize overflows a C long on Windows, so halve until it fits. The limit is process-wide; raising it
    only drops a guard meant for untrusted streams."""
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:
            limit //= 2


def _csv_rows(path: Path, lines: list[str], delimiter: str, why: str = "") -> list[tuple[int, list[str]]]:
    """(first line, fields) of every record, parsed by the csv module in strict mode. ``why`` says, in an
    error, why a TSV file is read with CSV quoting."""
    _widen_csv_fields()
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    rows: list[tuple[int, list[str]]] = []
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return rows
        except csv.Error as e:
            what = "the header" if start == 1 else "the row"
            span = f", which runs to line {reader.line_num}" if reader.line_num > start else ""
            hint = "; a quote opened here is never closed" if "end of data" in str(e) else ""
            raise UserError(f"{path}, line {start}: could not parse {what}{span} ({e}{hint}); check the quoting"
                            f"{why}.") from None
        rows.append((start, row))
        start = reader.line_num + 1


def _tsv_rows(path: Path, lines: list[str]) -> list[tuple[int, list[str]]]:
    """(first line, fields) of every record of a TSV file, quoted or not: the rule in the module docstring."""
    split = [_chomp(line).split("\t") for line in lines]
    if not split:
        return []
    width = len(split[0])
    odd = next((n for n, fields in enumerate(split, 1) if len(fields) != width and not _blank(fields)), None)
    if odd is not None:
        why = (f" (the file is read with CSV quoting because line {odd} has {len(split[odd - 1])} tab-separated "
               f"fields where the header has {width})")
        return _csv_rows(path, lines, "\t", why)
    if _shows_quoting(split, _chomp(lines[0])):
        try:
            rows = _csv_rows(path, lines, "\t")
        except UserError:
            rows = []
        if rows and all(len(fields) == len(rows[0][1]) or _blank(fields) for _, fields in rows):
            return rows
    return [(n, [_unquote(f) for f in fields]) for n, fields in enumerate(split, 1)]


def _shows_quoting(split: list[list[str]], header: str) -> bool:
    """Rule 3: a field opens a quote that it does not close (read line by line it would stay as it is), while
    the file shows a writer that quotes: a header line as QUOTE_ALL writes it, or a quoted field holding an
    escaped quote."""
    fields = [f for row in split for f in row]
    if not any(f.startswith('"') and not _is_quoted(f) for f in fields):
        return False
    return _quote_all_line(header) or any(_is_quoted(f) and '""' in f[1:-1] for f in fields)


def _quote_all_line(line: str) -> bool:
    """Whether ``line`` is exactly what csv.writer(delimiter="\\t", quoting=QUOTE_ALL) writes for its fields
    (split on tabs, a quoted name with a tab would not look quoted)."""
    try:
        fields = next(csv.reader([line], delimiter="\t", strict=True))
    except (csv.Error, StopIteration):
        return False
    return line == "\t".join('"' + f.replace('"', '""') + '"' for f in fields)


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
