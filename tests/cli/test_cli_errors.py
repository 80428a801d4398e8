"""Every user mistake: a one-paragraph message naming the place, exit code 2, nothing written."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from enctune.cli import main

from ..conftest import make_rows, write_jsonl


def run_cli(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def good(tmp_path):
    return write_jsonl(tmp_path / "good" / "train.jsonl", make_rows(40))


def _train_args(tiny_bert, data, out, *extra):
    return ["train", "--data", str(data), "--out", str(out), "--model", str(tiny_bert), "--epochs", "1",
            "--quiet", *extra]


CASES = {
    "missing file": (lambda d: d / "nope.jsonl", None, "no such file"),
    "unknown format": (lambda d: d / "x.xml", "<x/>", "unknown format"),
    "empty file": (lambda d: d / "x.csv", "", "empty"),
    "no text column": (lambda d: d / "x.csv", "words,label\na,b\nc,d\n", "could not find the text column"),
    "no label column": (lambda d: d / "x.csv", "text,other\na,b\nc,d\n", "could not find the label column"),
    "empty text": (lambda d: d / "x.csv", "text,label\nhello,a\n   ,b\nok,a\n,b\n", "line 3, 5"),
    "single class": (lambda d: d / "x.csv", "text,label\nhello,a\nbye,a\nhi,a\n", "at least two classes"),
    "not utf-8": (lambda d: d / "x.csv", b"text,label\nok,a\nno\xff,b\n", "not UTF-8"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_training_data(case, tmp_path, tiny_bert, capsys):
    path_fn, content, expected = CASES[case]
    data = path_fn(tmp_path)
    if content is not None:
        data.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "run"
    code, stdout, err = run_cli(_train_args(tiny_bert, data, out), capsys)
    assert code == 2
    assert expected in err
    assert str(data) in err
    assert "Traceback" not in err
    assert not out.exists()
    assert not any(p.name.startswith(".run") for p in tmp_path.iterdir())


def test_missing_column_lists_existing_columns(tmp_path, tiny_bert, capsys):
    data = tmp_path / "x.csv"
    data.write_text("words,label\na,b\nc,d\n")
    code, _, err = run_cli(_train_args(tiny_bert, data, tmp_path / "run"), capsys)
    assert code == 2 and "Columns in this file: words, label" in err


def test_named_column_that_does_not_exist(tmp_path, tiny_bert, good, capsys):
    code, _, err = run_cli(_train_args(tiny_bert, good, tmp_path / "run", "--text-column", "review"), capsys)
    assert code == 2 and "no column 'review'" in err and "text, label" in err


def test_unseen_label_in_test(tmp_path, tiny_bert, good, capsys):
    test = write_jsonl(tmp_path / "test.jsonl", [{"text": "good film", "label": "positive"},
                                                 {"text": "odd", "label": "neutral"}])
    code, _, err = run_cli(_train_args(tiny_bert, good, tmp_path / "run", "--test", str(test)), capsys)
    assert code == 2
    assert f"{test}, line 2" in err and "'neutral' never appears in train" in err
    assert not (tmp_path / "run").exists()


def test_unknown_model(tmp_path, good, capsys):
    out = tmp_path / "run"
    code, _, err = run_cli(["train", "--data", str(good), "--out", str(out), "--model", "no-such-org/no-model", "-q"],
                           capsys)
    assert code == 2 and "not reachable as a hub id" in err and not out.exists()
    code, _, err = run_cli(["train", "--data", str(good), "--out", str(out), "--model", "./missing/folder", "-q"],
                           capsys)
    assert code == 2 and "no such folder" in err


@pytest.mark.parametrize("flag,value,expected", [
    ("--strategy", "magic", "--strategy='magic'"),
    ("--epochs", "0", "--epochs=0"),
    ("--precision", "fp8", "--precision='fp8'"),
    ("--class-weights", "weird", "--class-weights='weird'"),
])
def test_invalid_option_values(flag, value, expected, tmp_path, tiny_bert, good, capsys):
    out = tmp_path / "run"
    code, _, err = run_cli(_train_args(tiny_bert, good, out, flag, value), capsys)
    assert code == 2 and expected in err and not out.exists()


def test_non_number_option_is_a_usage_error(tmp_path, good):
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "enctune", "train", "--data", str(good), "--out", str(out),
                        "--epochs", "many"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "--epochs" in p.stderr and "integer" in p.stderr
    assert "Traceback" not in p.stderr and not out.exists()


def test_unknown_key_in_config_file(tmp_path, tiny_bert, good, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 1\nlearning_rate: 0.1\n")
    code, _, err = run_cli(_train_args(tiny_bert, good, tmp_path / "run", "--config", str(cfg)), capsys)
    assert code == 2 and "learning_rate" in err and "unknown option" in err


def test_refuses_to_overwrite_a_foreign_folder(tmp_path, tiny_bert, good, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    code, _, err = run_cli(_train_args(tiny_bert, good, out), capsys)
    assert code == 2 and "not an enctune run" in err
    assert (out / "thesis.tex").read_text() == "precious"


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_folder_that_is_not_a_model_folder(command, tmp_path, good, capsys):
    folder = tmp_path / "random"
    folder.mkdir()
    args = [command, str(folder)] + (["hello"] if command == "predict" else ["--data", str(good)])
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "not an enctune model folder" in err


def test_predict_output_is_not_half_written(tmp_path, tiny_bert, good, capsys):
    run = tmp_path / "run"
    assert run_cli(_train_args(tiny_bert, good, run), capsys)[0] == 0
    bad = tmp_path / "in.jsonl"
    bad.write_text('{"text": "good"}\n{"text": ""}\n')
    out = tmp_path / "preds.jsonl"
    code, _, err = run_cli(["predict", str(run), "--input", str(bad), "--output", str(out)], capsys)
    assert code == 2 and "line 2" in err
    assert not out.exists()
    code, _, err = run_cli(["embed", "--model", str(run), "--input", str(bad), "--output", str(tmp_path / "v.npy")],
                           capsys)
    assert code == 2 and not (tmp_path / "v.npy").exists()


def test_embed_rejects_unknown_output_format(tmp_path, good, capsys):
    code, _, err = run_cli(["embed", "--input", str(good), "--output", str(tmp_path / "v.pkl")], capsys)
    assert code == 2 and ".npy" in err


def test_evaluate_with_label_the_model_does_not_know(tmp_path, tiny_bert, good, capsys):
    run = tmp_path / "run"
    assert run_cli(_train_args(tiny_bert, good, run), capsys)[0] == 0
    data = write_jsonl(tmp_path / "t.jsonl", [{"text": "good", "label": "positive"}, {"text": "x", "label": "meh"}])
    code, _, err = run_cli(["evaluate", str(run), "--data", str(data)], capsys)
    assert code == 2 and "line 2" in err and "'meh'" in err
    code, out, _ = run_cli(["evaluate", str(run), "--data", str(good), "--json"], capsys)
    assert code == 0 and json.loads(out)["n"] == 40
