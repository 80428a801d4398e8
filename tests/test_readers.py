"""Readers and split loading: every format, column inference, and row-level errors."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from enctune.data import load_splits, load_texts, read_table
from enctune.errors import UserError

from .conftest import make_rows, write_jsonl


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
