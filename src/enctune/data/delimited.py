"""CSV and TSV files into records.

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
import sys
from pathlib import Path

from ..errors import UserError
from .encoding import BOMS
from .table import Table


def read_delimited(path: Path, text: str, fmt: str) -> Table:
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


def excel_unicode_text(raw: bytes, text: str) -> bool:
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
