"""Hostile input sweep: every reader gets thousands of generated files, well-formed and broken
(bad quoting, mixed encodings, NUL bytes, huge fields, deep JSON, wrong types, BOMs, CRLF,
truncation). Each must load correctly or fail with a UserError; no other exception escapes.

Runs are reproducible (derandomize, no example database); ``deadline=None`` because the
machine is shared and a slow example is not a failure here. ENCTUNE_SWEEP_EXAMPLES=N runs
fewer (or more) per reader while developing; CI runs 2,000.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enctune.data import load_texts
from enctune.data.readers import read_table
from enctune.errors import UserError

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
    return raw, expected


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
