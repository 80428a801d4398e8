"""Readers and split loading: every format, column inference, and row-level errors."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from enctune.data import load_texts, read_table
from enctune.errors import UserError
from enctune.steps import load_splits

from ..conftest import make_rows, write_jsonl


def test_every_format_reads_the_same_records(tmp_path):
    rows = [{"review": "nice one", "stars": "5"}, {"review": "meh, bad", "stars": "1"}]
    (tmp_path / "a.csv").write_text('review,stars\nnice one,5\n"meh, bad",1\n')
    (tmp_path / "a.tsv").write_text("review\tstars\nnice one\t5\nmeh, bad\t1\n")
    write_jsonl(tmp_path / "a.jsonl", rows)
    (tmp_path / "a.json").write_text(json.dumps(rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    for ext in ("csv", "tsv", "jsonl", "json", "parquet"):
        t = read_table(tmp_path / f"a.{ext}")
        assert t.records == rows, ext
        assert t.columns == ["review", "stars"], ext


def test_bom_and_crlf_are_accepted(tmp_path):
    f = tmp_path / "x.csv"
    f.write_bytes("\ufefftext,label\r\nhello,a\r\nbye,b\r\n".encode())
    t = read_table(f)
    assert t.columns == ["text", "label"]
    assert [r["text"] for r in t.records] == ["hello", "bye"]


def test_column_inference_and_overrides(tmp_path):
    f = write_jsonl(tmp_path / "train.jsonl", [{"review": r["text"], "stars": r["label"]} for r in make_rows(30)])
    s = load_splits(f)
    assert (s.columns.text, s.columns.label) == ("review", "stars")
    g = write_jsonl(tmp_path / "t2.jsonl", [{"body": r["text"], "mood": r["label"], "other": "x"} for r in make_rows(30)])
    s2 = load_splits(g, text_column="body", label_column="mood")
    assert s2.labels == ["negative", "positive"]


def test_integer_labels_keep_their_type_and_order(tmp_path):
    rows = [{"text": f"t{i}", "label": i % 3 * 5} for i in range(30)]  # 0, 5, 10
    s = load_splits(write_jsonl(tmp_path / "train.jsonl", rows))
    assert s.labels == ["0", "5", "10"]
    assert s.label_type == "int"


def test_validation_is_carved_stratified_and_seeded(tmp_path):
    f = write_jsonl(tmp_path / "train.jsonl", make_rows(100))
    a = load_splits(f, seed=1)
    b = load_splits(f, seed=1)
    c = load_splits(f, seed=2)
    assert a.validation_carved and len(a.validation) == 10 and len(a.train) == 90
    assert a.validation.texts == b.validation.texts
    assert a.validation.texts != c.validation.texts
    assert sorted(a.validation.labels).count("positive") == 5  # stratified: 50/50 kept


def test_folder_with_dev_and_test(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", make_rows(20))
    write_jsonl(tmp_path / "dev.jsonl", make_rows(6, seed=4))
    (tmp_path / "test.csv").write_text("text,label\ngood film,positive\nbad film,negative\n")
    s = load_splits(tmp_path)
    assert not s.validation_carved
    assert len(s.validation) == 6 and len(s.test) == 2


def test_text_pairs_are_read(tmp_path):
    rows = [{"sentence1": f"a{i}", "sentence2": f"b{i}", "label": i % 2} for i in range(20)]
    s = load_splits(write_jsonl(tmp_path / "train.jsonl", rows))
    assert s.columns.pair == "sentence2"
    assert s.train.pairs is not None and len(s.train.pairs) == len(s.train.texts)


def test_duplicates_and_leakage_warn(tmp_path):
    rows = make_rows(20) + make_rows(2)
    write_jsonl(tmp_path / "train.jsonl", rows)
    write_jsonl(tmp_path / "test.jsonl", rows[:3])
    with pytest.warns(UserWarning) as rec:
        load_splits(tmp_path)
    msgs = " ".join(str(w.message) for w in rec)
    assert "duplicate" in msgs and "both train and test" in msgs


def test_load_texts_from_txt(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("one\n\ntwo\n")
    assert load_texts(f).texts == ["one", "two"]


@pytest.mark.parametrize(
    "name,content,expected",
    [
        ("x.csv", "text,label\n\"unclosed,a\n", "line 2"),
        ("x.csv", "text,label\nhello,a,extra\n", "3 fields"),
        ("x.jsonl", '{"text": "a", "label": "x"}\n{not json}\n', "line 2"),
        ("x.jsonl", '[1, 2]\n', "expected a JSON object"),
        ("x.json", '{"text": 1}', "expected a JSON array"),
        ("x.xml", "<a/>", "unknown format"),
        ("x.csv", "", "empty"),
        ("x.csv", "text,text\na,b\n", "appear twice"),
    ],
)
def test_unreadable_files_name_the_place(tmp_path, name, content, expected):
    f = tmp_path / name
    f.write_text(content)
    with pytest.raises(UserError) as e:
        read_table(f)
    assert expected in str(e.value)
    assert str(f) in str(e.value)


def test_non_utf8_names_the_line(tmp_path):
    f = tmp_path / "x.csv"
    f.write_bytes(b"text,label\nok,a\ncaf\xe9,b\n")
    with pytest.raises(UserError, match=r"line 3: bytes that are not UTF-8"):
        read_table(f)


# ---- TSV quoting: unquoted (GLUE) and quoted (csv.writer) dialects; the rule is in readers' docstring ----

def test_tsv_text_starting_with_a_quote_stays_on_its_line(tmp_path):
    f = tmp_path / "x.tsv"
    f.write_text('text\tlabel\n"the movie\t1\nanother one"\t0\n')
    t = read_table(f)
    assert t.records == [{"text": '"the movie', "label": "1"}, {"text": 'another one"', "label": "0"}]
    assert t.lines == [2, 3]


def test_unquoted_tsv_keeps_quotes_inside_the_text(tmp_path):
    f = tmp_path / "glue.tsv"
    f.write_text('sentence\tlabel\n"the movie" is great\t1\nit said "no\t0\n')
    assert [r["sentence"] for r in read_table(f).records] == ['"the movie" is great', 'it said "no']


def test_tsv_from_csv_writer_round_trips(tmp_path):
    import csv

    rows = [["a\tb", "1"], ['say "hi"', "0"], ["two\nlines", "1"], ['"quoted"', "0"], ["plain", "1"]]
    f = tmp_path / "w.tsv"
    with open(f, "w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t")
        w.writerow(["text", "label"])
        w.writerows(rows)
    assert [[r["text"], r["label"]] for r in read_table(f).records] == rows


def test_quote_all_tsv_spanning_lines_evenly_is_read_as_csv(tmp_path):
    # every line has two tab-separated fields, but the quoted header shows a quoting writer (rule 3)
    f = tmp_path / "q.tsv"
    f.write_text('"text"\t"label"\n"a\tb\nc"\t"1"\n"d"\t"0"\n')
    assert read_table(f).records == [{"text": "a\tb\nc", "label": "1"}, {"text": "d", "label": "0"}]


def test_unquoted_tsv_field_that_is_a_quoted_field_is_unquoted(tmp_path):
    # the documented give-up: "hi" written raw reads as hi, as a quoting writer means it
    f = tmp_path / "x.tsv"
    f.write_text('text\tlabel\n"hi"\t1\n"say ""hi"""\t0\n')
    assert [r["text"] for r in read_table(f).records] == ["hi", 'say "hi"']


def test_tsv_that_needs_quoting_but_never_closes_it_names_the_line(tmp_path):
    f = tmp_path / "x.tsv"
    f.write_text('text\tlabel\nok\t1\n"the movie\t1\nbad\tline\tthree\n')
    with pytest.raises(UserError) as e:
        read_table(f)
    msg = str(e.value)
    assert f"{f}, line 3" in msg and "never closed" in msg and "line 4 has 3 tab-separated fields" in msg


def test_csv_quote_that_closes_mid_field_is_an_error_not_merged_text(tmp_path):
    f = tmp_path / "x.csv"
    f.write_text('text,label\nfine,1\n"the movie" is great,0\n')
    with pytest.raises(UserError, match=r"x\.csv, line 3: could not parse the row"):
        read_table(f)


# ---- huge cells -----------------------------------------------------------------------------------------

def test_huge_csv_cell_loads_like_jsonl(tmp_path):
    big = "word " * 60_000  # 300,000 characters, over the csv module's default 131,072
    (tmp_path / "x.csv").write_text(f'text,label\n"{big}",a\nsmall,b\n')
    write_jsonl(tmp_path / "x.jsonl", [{"text": big, "label": "a"}, {"text": "small", "label": "b"}])
    assert read_table(tmp_path / "x.csv").records == read_table(tmp_path / "x.jsonl").records


# ---- labels: missing spellings, one spelling per number --------------------------------------------------

def _labelled_csv(path, labels):
    path.write_text("text,label\n" + "".join(f"text {i},{lab}\n" for i, lab in enumerate(labels)))
    return path


@pytest.mark.parametrize("missing", ["", " ", "NA", "N/A", "n/a", "#N/A", "<NA>", "NaN", "nan", "null", "NULL",
                                     "\\N"])
def test_missing_label_spellings_are_missing_not_a_class(tmp_path, missing):
    f = _labelled_csv(tmp_path / "x.csv", ["pos", "neg"] * 5 + [missing] + ["pos"])
    with pytest.raises(UserError) as e:
        load_splits(f)
    msg = str(e.value)
    assert str(f) in msg and "(line 12;" in msg and "column 'label'" in msg and "missing label" in msg


def test_missing_labels_in_parquet_and_json_name_the_row(tmp_path):
    rows = [{"text": f"t{i}", "label": lab} for i, lab in enumerate(["a", "b", "a", None, "NaN", "b"])]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "x.parquet")
    with pytest.raises(UserError, match=r"x\.parquet: 2 row\(s\) with a missing .* \(row 4, 5; found: empty, 'NaN'\)"):
        load_splits(tmp_path / "x.parquet")
    write_jsonl(tmp_path / "x.jsonl", [{"text": "t", "label": float("nan")}] + rows[:3])
    with pytest.raises(UserError, match=r"x\.jsonl: 1 row\(s\) .* \(line 1; found: nan\)"):
        load_splits(tmp_path / "x.jsonl")


def test_none_and_lowercase_na_stay_classes(tmp_path):
    s = load_splits(_labelled_csv(tmp_path / "x.csv", ["None", "na"] * 6))
    assert s.labels == ["None", "na"]


def test_integer_valued_decimals_are_one_class_with_the_integer(tmp_path):
    s = load_splits(_labelled_csv(tmp_path / "x.csv", ["0", "1", "0.0", "1.0", "-2.00", "-2", "+1", "1."] * 3))
    assert (s.labels, s.label_type) == (["-2", "0", "1"], "int")


def test_codes_exponents_and_fractions_keep_their_spelling(tmp_path):
    s = load_splits(_labelled_csv(tmp_path / "x.csv", ["01", "1", "1e3", "0.5", "0.50"] * 3), task="classify")
    assert (s.labels, s.label_type) == (["0.5", "0.50", "01", "1", "1e3"], "str")
    padded = load_splits(_labelled_csv(tmp_path / "y.csv", ["01", "1", "02"] * 3), task="classify")
    assert (padded.labels, padded.label_type) == (["01", "02", "1"], "str")  # as ints "01" and "1" would both be 1


# ---- encodings -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding,bom", [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff"),
                                          ("utf-32-le", b"\xff\xfe\x00\x00"), ("utf-32-be", b"\x00\x00\xfe\xff")])
def test_files_with_a_utf16_or_utf32_bom_are_decoded(tmp_path, encoding, bom):
    (tmp_path / "x.tsv").write_bytes(bom + "text\tlabel\ncafé\t1\n日本\t0\n".encode(encoding))
    (tmp_path / "y.csv").write_bytes(bom + 'text,label\n"a, b",1\n'.encode(encoding))
    expected = [{"text": "café", "label": "1"}, {"text": "日本", "label": "0"}]
    assert read_table(tmp_path / "x.tsv").records == expected
    assert read_table(tmp_path / "y.csv").records == [{"text": "a, b", "label": "1"}]


def test_excel_unicode_text_renamed_csv_is_read_with_tabs(tmp_path):
    f = tmp_path / "export.csv"  # Excel "Unicode text": UTF-16 LE with a BOM, tab-separated
    f.write_bytes("text\tlabel\r\nnice, really\tpos\r\n".encode("utf-16"))
    assert read_table(f).records == [{"text": "nice, really", "label": "pos"}]


def test_utf16_without_a_bom_says_so(tmp_path):
    f = tmp_path / "x.csv"
    f.write_bytes("text,label\nhello,a\n".encode("utf-16-le"))
    with pytest.raises(UserError, match=r"x\.csv: looks like UTF-16 LE without a byte-order mark.*iconv -f utf-16le"):
        read_table(f)


def test_broken_utf16_names_the_line(tmp_path):
    f = tmp_path / "x.tsv"
    f.write_bytes("text\tlabel\nok\t1\n".encode("utf-16") + b"\x00\xd8a\x00")  # an unpaired high surrogate
    with pytest.raises(UserError, match=r"x\.tsv, line 3: not valid UTF-16 LE"):
        read_table(f)


def test_non_utf8_message_does_not_claim_latin1(tmp_path):
    f = tmp_path / "x.csv"
    f.write_bytes(b"text,label\nok,a\n\x93quoted\x94,b\n")  # cp1252 curly quotes, C1 controls in latin1
    with pytest.raises(UserError) as e:
        read_table(f)
    msg = str(e.value)
    assert "line 3: bytes that are not UTF-8 (byte 0x93 at offset 16" in msg and "\\x93quoted\\x94" in msg
    assert "iconv -f ENCODING -t utf-8" in msg and "cp1252" in msg and "iconv -f latin1" not in msg
