"""Hostile input sweep: every reader gets thousands of generated files, well-formed and broken
(bad quoting, mixed encodings, NUL bytes, huge fields, deep JSON, wrong types, BOMs, CRLF,
truncation). Each must load correctly or fail with a UserError; no other exception escapes.

The round-trip sweeps at the end write rows with the standard writers (csv.writer in several modes,
tab-joined lines, json.dumps, pyarrow; UTF-8, UTF-16 and UTF-32) and ask for the same rows back: same
count, same texts, the same labels after the documented normalisation, and a UserError, never a class,
for a missing label.

Runs are reproducible (derandomize, no example database); ``deadline=None`` because the
machine is shared and a slow example is not a failure here. ENCTUNE_SWEEP_EXAMPLES=N runs
fewer (or more) per sweep while developing; by default CI runs 2,000 per reader and 800 per
round-trip sweep.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from enctune.data import Columns, label_map, load_texts
from enctune.data.readers import read_table
from enctune.errors import UserError
from enctune.tasks.classify import ClassifyTask

SWEEP = settings(max_examples=int(os.environ.get("ENCTUNE_SWEEP_EXAMPLES", 2000)), derandomize=True, deadline=None, database=None, print_blob=True,
                 suppress_health_check=list(HealthCheck))

TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
LINE = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r\n"), max_size=12)
NAME = st.sampled_from(["text", "label", "sentence", " text ", "Label", "a,b", 'q"x', "x\ty", "é", "pair"])
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False), TEXT)
JSON_VALUE = st.recursive(SCALAR, lambda c: st.lists(c, max_size=3) | st.dictionaries(TEXT, c, max_size=3),
                          max_leaves=4)
BOM = b"\xef\xbb\xbf"


@st.composite
def mutated(draw, raw: bytes) -> bytes:
    """``raw`` with a few hostile edits: NULs, BOMs, line-ending changes, foreign encodings, stray quotes,
    truncation, huge fields, random bytes, deep nesting."""
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(raw)))
        op = draw(st.sampled_from(["nul", "bom", "crlf", "cr", "latin1", "utf16", "quote", "truncate", "huge",
                                   "bytes", "deep", "bigint", "surrogate", "brace"]))
        if op == "nul":
            raw = raw[:at] + b"\x00" + raw[at:]
        elif op == "bom":
            raw = raw[:at] + BOM + raw[at:]
        elif op == "crlf":
            raw = raw.replace(b"\n", b"\r\n")
        elif op == "cr":
            raw = raw.replace(b"\n", b"\r")
        elif op == "latin1":
            raw = raw[:at] + "café".encode("latin-1") + raw[at:]
        elif op == "utf16":
            raw = raw.decode("utf-8", "replace").encode("utf-16")
        elif op == "quote":
            raw = raw[:at] + b'"' + raw[at:]
        elif op == "truncate":
            raw = raw[:at]
        elif op == "huge":
            raw = raw[:at] + b"x" * 200_000 + raw[at:]
        elif op == "bytes":
            raw = raw[:at] + draw(st.binary(max_size=8)) + raw[at:]
        elif op == "deep":
            n = draw(st.sampled_from([50, 5000, 100_000]))
            raw = raw[:at] + b"[" * n + b"]" * n + raw[at:]
        elif op == "bigint":
            raw = raw[:at] + b"9" * 5000 + raw[at:]
        elif op == "surrogate":
            raw = raw[:at] + b'"\\ud800"' + raw[at:]
        else:
            raw = raw[:at] + draw(st.sampled_from([b"{", b"}", b"[", b",", b":", b"\t", b"\n"])) + raw[at:]
    return raw


def check(path: Path, raw: bytes, expected: list[dict] | None) -> None:
    """A correct load (the expected records when the input was well-formed) or a UserError; nothing else."""
    path.write_bytes(raw)
    try:
        table = read_table(path)
    except UserError as e:
        assert str(e) and path.name in str(e)
        assert expected is None or not expected, f"well-formed input refused: {e}"
        return
    if expected is not None:
        assert table.records == expected
    assert len(table.lines) == len(table.records)
    try:
        load_texts(path)  # column inference and row checks on whatever was read
    except UserError as e:
        assert str(e)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hostile")


@st.composite
def delimited(draw, delimiter: str):
    names = draw(st.lists(NAME, min_size=1, max_size=3, unique_by=str.strip))
    rows = draw(st.lists(st.lists(TEXT, min_size=len(names), max_size=len(names)), max_size=4))
    buf = io.StringIO()
    # with "\n" line ends the writer would leave a lone "\r" unquoted (a file no reader can tell apart)
    end = draw(st.sampled_from(["\n", "\r\n"]))
    w = csv.writer(buf, delimiter=delimiter, lineterminator=end,
                   quoting=csv.QUOTE_ALL if end == "\n" else csv.QUOTE_MINIMAL)
    w.writerow(names)
    w.writerows(rows)
    raw = (BOM if draw(st.booleans()) else b"") + buf.getvalue().encode()
    header = [n.strip() for n in names]
    expected = [dict(zip(header, r, strict=True)) for r in rows if any(c.strip() for c in r)]
    if draw(st.booleans()):
        return draw(mutated(raw)), None
    if delimiter == "\t" and end == "\r\n":  # QUOTE_MINIMAL: the header shows no quoting
        assume(not splits_evenly(buf.getvalue(), [c for r in rows for c in r]))
    return raw, expected


def splits_evenly(data: str, cells: list[str]) -> bool:
    """The readers' documented TSV give-up (module docstring, rule 1): when quoted cells hold tabs or newlines
    and yet every non-blank line has the header's number of tab-separated fields (a text spanning lines in a
    one-column file, say), a file that shows no quoting writer is read line by line, as unquoted TSV with a
    text that opens a quote would be. Such files are left out of the sweeps; test_readers pins both readings."""
    if not any("\n" in c or "\t" in c for c in cells):
        return False
    lines = data.split("\n")
    width = lines[0].count("\t")
    return all(line.count("\t") == width for line in lines if line.strip())


@st.composite
def jsonl(draw):
    records = draw(st.lists(st.dictionaries(NAME, JSON_VALUE, max_size=3), max_size=4))
    ascii_only = draw(st.booleans())
    end = draw(st.sampled_from(["\n", "\r\n"]))
    raw = (BOM if draw(st.booleans()) else b"") + "".join(
        json.dumps(r, ensure_ascii=ascii_only) + end for r in records).encode()
    if draw(st.booleans()):
        return draw(mutated(raw)), None
    if draw(st.booleans()):  # wrong types: a line that is not an object
        return raw + json.dumps(draw(JSON_VALUE)).encode() + b"\n", None
    return raw, records


@st.composite
def json_array(draw):
    records = draw(st.lists(st.dictionaries(NAME, JSON_VALUE, max_size=3), max_size=4))
    obj = {"data": records} if draw(st.booleans()) else records
    raw = json.dumps(obj, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 2]))).encode()
    if draw(st.booleans()):
        return draw(mutated(raw)), None
    if draw(st.booleans()):  # wrong types at the top or inside the array
        return json.dumps(draw(st.one_of(JSON_VALUE, st.lists(JSON_VALUE, max_size=3)))).encode(), None
    return raw, records


@st.composite
def txt(draw):
    lines = draw(st.lists(LINE, max_size=5))
    raw = "".join(ln + draw(st.sampled_from(["\n", "\r\n"])) for ln in lines).encode()
    if draw(st.booleans()):
        return draw(mutated(raw)), None
    return raw, [{"text": ln} for ln in lines if ln.strip()]


@st.composite
def parquet(draw):
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = draw(st.integers(0, 4))
    kinds = {"str": (st.one_of(st.none(), TEXT), pa.string()), "int": (st.integers(-2**63, 2**63 - 1), pa.int64()),
             "float": (st.floats(allow_nan=False), pa.float64()), "bool": (st.booleans(), pa.bool_()),
             "list": (st.lists(TEXT, max_size=2), pa.list_(pa.string())), "bytes": (st.binary(max_size=6),
                                                                                  pa.binary())}
    names = draw(st.lists(st.sampled_from(["text", "label", "sentence", "x"]), min_size=1, max_size=3,
                          unique=True))
    cols = {}
    for name in names:
        values, typ = kinds[draw(st.sampled_from(sorted(kinds)))]
        cols[name] = pa.array(draw(st.lists(values, min_size=n, max_size=n)), type=typ)
    table = pa.table(cols)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    raw = buf.getvalue()
    if draw(st.booleans()):
        return draw(mutated(raw)), None
    return raw, table.to_pylist()


@SWEEP
@given(case=delimited(","))
def test_csv_sweep(folder, case):
    check(folder / "in.csv", *case)


@SWEEP
@given(case=delimited("\t"))
def test_tsv_sweep(folder, case):
    check(folder / "in.tsv", *case)


@SWEEP
@given(case=jsonl())
def test_jsonl_sweep(folder, case):
    check(folder / "in.jsonl", *case)


@SWEEP
@given(case=json_array())
def test_json_sweep(folder, case):
    check(folder / "in.json", *case)


@SWEEP
@given(case=txt())
def test_txt_sweep(folder, case):
    check(folder / "in.txt", *case)


@SWEEP
@given(case=parquet())
def test_parquet_sweep(folder, case):
    check(folder / "in.parquet", *case)


# CoNLL and SQuAD-style JSON: readers that arrive with the task kinds on main. Until this branch meets
# them the sweeps below cannot run; once merged they run like the others.
WORD = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=6).filter(
    lambda w: not any(c.isspace() for c in w) and w != "-DOCSTART-")


@st.composite
def conll(draw):
    width = draw(st.integers(2, 4))
    sentences = draw(st.lists(st.lists(st.tuples(WORD, st.sampled_from(["O", "B-PER", "I-PER", "B-LOC"])),
                                       min_size=1, max_size=4), max_size=3))
    sep, end = draw(st.sampled_from([" ", "\t"])), draw(st.sampled_from(["\n", "\r\n"]))
    body = ("-DOCSTART- -X- O" + end + end) if draw(st.booleans()) else ""
    for sent in sentences:
        body += "".join(sep.join([w] + ["X"] * (width - 2) + [t]) + end for w, t in sent) + end
    raw = body.encode()
    if draw(st.booleans()):
        return draw(mutated(raw)), None
    if draw(st.booleans()):  # a ragged row: fewer columns than the rest
        return raw + b"word" + end.encode(), None
    return raw, [{"tokens": [w for w, _ in s], "tags": [t for _, t in s]} for s in sentences]


@st.composite
def squad(draw):
    articles, expected = [], []
    for a in range(draw(st.integers(1, 2))):
        paragraphs = []
        for p in range(draw(st.integers(1, 2))):
            context = draw(TEXT)
            qas = []
            for q in range(draw(st.integers(0, 2))):
                answers = [{"text": draw(TEXT), "answer_start": draw(st.integers(0, 50))}
                           for _ in range(draw(st.integers(0, 2)))]
                qas.append({"id": f"{a}{p}{q}", "question": draw(TEXT), "answers": answers})
                expected.append({"id": f"{a}{p}{q}", "title": f"t{a}", "question": qas[-1]["question"],
                                 "context": context, "answers": {"text": [x["text"] for x in answers],
                                                                 "answer_start": [x["answer_start"] for x in answers]}})
            paragraphs.append({"context": context, "qas": qas})
        articles.append({"title": f"t{a}", "paragraphs": paragraphs})
    obj = {"version": "1.1", "data": articles}
    if draw(st.booleans()):  # wrong types: a random value in place of one part of the structure
        path = draw(st.sampled_from(["article", "paragraphs", "context", "qas", "qa", "answers", "answer"]))
        bad = draw(JSON_VALUE)
        art = articles[0]
        para = art["paragraphs"][0]
        if path == "article":
            articles.append(bad)
        elif path in ("paragraphs",):
            art["paragraphs"] = bad
        elif path in ("context", "qas"):
            para[path] = bad
        elif para["qas"]:
            qa = para["qas"][0]
            if path == "qa":
                para["qas"].append(bad)
            elif path == "answers":
                qa["answers"] = bad
            else:
                qa["answers"].append(bad)
        return json.dumps(obj).encode(), None
    raw = json.dumps(obj, ensure_ascii=draw(st.booleans())).encode()
    if draw(st.booleans()):
        return draw(mutated(raw)), None
    return raw, expected


@SWEEP
@given(case=conll())
def test_conll_sweep(folder, case):
    check(folder / "in.conll", *case)


@SWEEP
@given(case=squad())
def test_squad_sweep(folder, case):
    check(folder / "squad.json", *case)



# ---- Round trip: rows written by the standard writers come back as the same rows -------------------------
# Texts hold what real data holds and readers trip on: a quote at the start, tabs, newlines, CR, commas,
# unicode and now and then a cell over the csv module's default limit (131,072 characters). Labels are spelled
# as writers spell them, each with the class the documented normalisation makes of it (dataset.MISSING_LABELS,
# dataset._label_str). A smaller default count (800) keeps these five sweeps under a minute (about 45 s on a
# shared two-core machine).

ROUND_TRIP = settings(SWEEP, max_examples=int(os.environ.get("ENCTUNE_SWEEP_EXAMPLES", 800)))
CLASSIFY = ClassifyTask()
COLUMNS = Columns("text", None, "label")

PIECE = st.one_of(
    st.sampled_from(['"', '""', '"quoted"', "\t", "\n", "\r", "\r\n", ",", "'", " ", "é", "日本語", "🙂", "\u2028",
                     "\x0c", "NA", "0.0", '"the movie\t1\nanother one"', "a\tb\nc", '"open\t', '\n"']),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=6),
)
SHORT_TEXT = st.lists(PIECE, min_size=1, max_size=5).map("".join).filter(str.strip)


@st.composite
def row_text(draw) -> str:
    text = draw(SHORT_TEXT)
    if draw(st.integers(0, 60)) == 60:  # a cell over 131,072 characters, a few times per hundred
        text += "x" * 131_073 + draw(SHORT_TEXT)
    return text


# labels as (value written, class it must read as)
CLASS_NAMES = st.sampled_from(["pos", "neg", "None", "na", "Null", "01", "007", "1e3", "0.5", "-0.25", "True",
                               "é", "two words", " padded ", "0x10"]).map(lambda s: (s, s.strip()))
WHOLE = st.one_of(st.integers(-3, 12), st.just(2**62), st.just(10**20))


def _spelled(n: int):
    """The spellings writers give a whole number: 3, 3.0 (pandas, from a float column), 3.00, 3., +3."""
    forms = [str(n), f"{n}.0", f"{n}.00", f"{n}."] + ([f"+{n}"] if n >= 0 else [])
    return st.sampled_from(forms).map(lambda s: (s, str(n)))


SPELLED_LABEL = st.one_of(CLASS_NAMES, WHOLE.flatmap(_spelled))
NUMBER_LABEL = st.one_of(WHOLE.map(lambda n: (float(n), str(n))),
                         st.sampled_from([0.5, -0.25]).map(lambda x: (x, str(x))))
NATIVE_LABEL = st.one_of(SPELLED_LABEL, NUMBER_LABEL, WHOLE.map(lambda n: (n, str(n))),
                         st.booleans().map(lambda b: (b, str(b).lower())))
# the documented missing-label set as files spell it (JSON adds null and NaN, Parquet None and NaN)
MISSING = st.sampled_from(["", " ", "NA", " NA ", "N/A", "n/a", "#N/A", "#N/A N/A", "<NA>", "NaN", "nan", "-nan",
                           "null", "NULL", "\\N", "1.#QNAN"])


@st.composite
def labelled_rows(draw, labels, hole=None):
    """(texts, labels written, classes expected); with ``hole``, one label is a missing value (class None)."""
    pairs = draw(st.lists(st.tuples(row_text(), labels), min_size=1, max_size=6))
    texts, written, expected = [t for t, _ in pairs], [w for _, (w, _) in pairs], [e for _, (_, e) in pairs]
    if hole is not None:
        at = draw(st.integers(0, len(pairs) - 1))
        written[at], expected[at] = draw(hole), None
    return texts, written, expected


def quoted_as_read(text: str) -> str:
    """Unquoted TSV, as documented: a cell that is itself a complete CSV-quoted field reads unquoted."""
    if len(text) >= 2 and text[0] == text[-1] == '"' and '"' not in text[1:-1].replace('""', ""):
        return text[1:-1].replace('""', '"')
    return text


def encode(draw, data: str) -> bytes:
    """UTF-8 (with or without a BOM), or UTF-16/UTF-32 with a BOM as Excel and Windows tools write them."""
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-be", "utf-32"]))
    if encoding == "utf-16-be":
        return b"\xfe\xff" + data.encode("utf-16-be")
    return data.encode(encoding)


def csv_writer_text(texts, written, delimiter: str, quoting: int, end: str) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, quoting=quoting, lineterminator=end)
    w.writerow(["text", "label"])
    w.writerows(zip(texts, written, strict=True))
    return buf.getvalue()


@st.composite
def delimited_file(draw, delimiter: str, hole=None):
    """(name, bytes, texts, labels written, classes) from csv.writer in its default (QUOTE_MINIMAL, CRLF),
    QUOTE_ALL and LF-ended modes, plain tab-joined lines (TSV), or Excel's "Unicode text" (UTF-16 TSV, .csv)."""
    texts, written, expected = draw(labelled_rows(SPELLED_LABEL, hole))
    modes = ["default", "all", "all-lf", "minimal-lf", "plain" if delimiter == "\t" else "excel"]
    mode = draw(st.sampled_from(modes))
    if mode == "plain":  # GLUE-style: no quoting at all, so no tab or newline inside a text
        texts = [t.replace("\t", " ").replace("\n", " ") for t in texts]
        assume(all(quoted_as_read(t).strip() for t in texts))
        data = "text\tlabel\n" + "".join(f"{t}\t{w}\n" for t, w in zip(texts, written, strict=True))
        return "in.tsv", encode(draw, data), [quoted_as_read(t) for t in texts], written, expected
    # Python 3.11's writer leaves a lone CR unquoted when lines end in LF: no reader can tell it from a line end
    lf = mode.endswith("-lf") and not any("\r" in t for t in texts)
    quoting = csv.QUOTE_ALL if mode.startswith("all") else csv.QUOTE_MINIMAL
    sep = "\t" if mode == "excel" else delimiter
    data = csv_writer_text(texts, written, sep, quoting, "\n" if lf else "\r\n")
    if sep == "\t" and quoting == csv.QUOTE_MINIMAL:
        assume(not splits_evenly(data, texts + written))
    raw = data.encode("utf-16") if mode == "excel" else encode(draw, data)
    return f"in.{'csv' if delimiter == ',' else 'tsv'}", raw, texts, written, expected


@st.composite
def json_file(draw, hole=None):
    """JSONL (json.dumps per line, LF or CRLF) or a JSON array, labels as strings, numbers or booleans."""
    texts, written, expected = draw(labelled_rows(NATIVE_LABEL, hole))
    records = [{"text": t, "label": w} for t, w in zip(texts, written, strict=True)]
    ascii_only = draw(st.booleans())
    if draw(st.booleans()):
        end = draw(st.sampled_from(["\n", "\r\n"]))
        name, data = "in.jsonl", "".join(json.dumps(r, ensure_ascii=ascii_only) + end for r in records)
    else:
        name, data = "in.json", json.dumps(records, ensure_ascii=ascii_only, indent=draw(st.sampled_from([None, 2])))
    return name, data.encode(), texts, written, expected


PARQUET_LABELS = {"string": SPELLED_LABEL, "int64": st.integers(-3, 2**62).map(lambda n: (n, str(n))),
                  "float64": NUMBER_LABEL}


@st.composite
def parquet_file(draw, hole: bool = False):
    """pyarrow: a label column typed string, int64 or float64; a hole is a null (or NaN, in floats)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    typ = draw(st.sampled_from(sorted(PARQUET_LABELS)))
    nulls = st.sampled_from([None, float("nan")] if typ == "float64" else [None])
    texts, written, expected = draw(labelled_rows(PARQUET_LABELS[typ], nulls if hole else None))
    buf = io.BytesIO()
    pq.write_table(pa.table({"text": pa.array(texts, pa.string()), "label": pa.array(written, typ)}), buf)
    return "in.parquet", buf.getvalue(), texts, written, expected


def round_trip(path: Path, raw: bytes, texts: list[str], written: list, labels: list[str]) -> None:
    """The same rows back: count, texts, and, as classify reads them, the labels (no extra class)."""
    path.write_bytes(raw)
    table = read_table(path)
    assert [r["text"] for r in table.records] == texts
    ex = CLASSIFY.read(table, COLUMNS)
    assert ex.texts == texts
    assert ex.labels == labels, f"written {written!r}"
    assert set(label_map(ex.labels)[0]) == set(labels)


@ROUND_TRIP
@given(case=delimited_file(","))
def test_csv_round_trip(folder, case):
    round_trip(folder / case[0], *case[1:])


@ROUND_TRIP
@given(case=delimited_file("\t"))
def test_tsv_round_trip(folder, case):
    round_trip(folder / case[0], *case[1:])


@ROUND_TRIP
@given(case=json_file())
def test_json_round_trip(folder, case):
    round_trip(folder / case[0], *case[1:])


@ROUND_TRIP
@given(case=parquet_file())
def test_parquet_round_trip(folder, case):
    round_trip(folder / case[0], *case[1:])


JSON_HOLE = st.one_of(MISSING, st.sampled_from([None, float("nan")]))


@ROUND_TRIP
@given(case=st.one_of(delimited_file(",", MISSING), delimited_file("\t", MISSING), json_file(JSON_HOLE),
                      parquet_file(hole=True)))
def test_missing_label_is_an_error_never_a_class(folder, case):
    name, raw, texts, written, labels = case
    path = folder / name
    path.write_bytes(raw)
    table = read_table(path)
    assert len(table.records) == len(texts)
    at = labels.index(None)
    with pytest.raises(UserError) as e:
        CLASSIFY.read(table, COLUMNS)
    msg = str(e.value)
    unit = "row" if name.endswith(".parquet") else "line"
    assert str(path) in msg and "column 'label'" in msg and f"({unit} {table.lines[at]};" in msg
