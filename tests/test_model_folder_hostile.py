"""Hostile model folders (issue 16, item 9): every field of enctune.json and every tensor of head.safetensors
tampered with, every file of the folder truncated or replaced by garbage, the same for an ONNX export's
enctune-onnx.json, and Hugging Face classifier folders with broken label maps.

Each load either works and predicts finite, printable outputs (what ``json.dumps(allow_nan=False)`` and
UTF-8 accept, as the HTTP server sends them) or raises UserError naming the folder; never another exception,
never a hang (``LIMIT_S``), never an allocation of the size a tampered field claims (five million labels
fail in seconds). One tiny probe run is trained per module; each case copies its model folder (the
unchanged encoder is linked, not copied).
"""

from __future__ import annotations

import json
import math
import shutil
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import enctune
from enctune.cli import main
from enctune.errors import UserError

from .conftest import make_rows, write_jsonl

TEXTS = ["good film", "awful boring mess", "the plot was really lovely and the acting superb"]
PAIRS = ["a lovely film", "boring", "the story"]
LIMIT_S = 60  # a generous bound for one load and predict on a shared machine: it catches hangs, not slowness
DELETE = object()
NAN, INF = float("nan"), float("inf")


@pytest.fixture(scope="module")
def trained(tiny_bert, tmp_path_factory) -> Path:
    """The model folder of a tiny probe run: classify, labels negative/positive, head '1.weight' (2, 32)."""
    tmp = tmp_path_factory.mktemp("hostile")
    data = write_jsonl(tmp / "train.jsonl", make_rows(40, seed=1))
    enctune.train(data=str(data), out=str(tmp / "run"), model=str(tiny_bert), strategy="probe", epochs=2)
    return tmp / "run" / "model"


@pytest.fixture
def folder(trained, tmp_path) -> Path:
    """A copy of the trained model folder to tamper with; its encoder/ is a link to the original's."""
    d = tmp_path / "model"
    d.mkdir()
    for f in trained.iterdir():
        if f.is_file():
            shutil.copy(f, d / f.name)
    (d / "encoder").symlink_to(trained / "encoder", target_is_directory=True)
    return d


@pytest.fixture
def own_encoder(folder, trained) -> Path:
    """``folder`` with a copy of the encoder of its own (new files: the original's are hard links to tiny_bert)."""
    (folder / "encoder").unlink()
    shutil.copytree(trained / "encoder", folder / "encoder")
    return folder / "encoder"


def outcome(folder: Path) -> str:
    """'works' (finite, printable predictions for every text) or 'refused' (a UserError naming the folder);
    anything else fails the test, and so does a case slower than LIMIT_S."""
    start = time.monotonic()
    try:
        predictor = enctune.load(folder)
        pairs = PAIRS if predictor.task.name == "extract" or predictor.meta.get("columns", {}).get("pair") else None
        out = predictor.predict(TEXTS, pairs)
    except UserError as e:
        assert str(folder) in str(e), str(e)  # the message says which folder (and file) is damaged
        str(e).encode("utf-8")  # printable: no lone surrogate from the file reaches the message
        return "refused"
    finally:
        assert time.monotonic() - start < LIMIT_S
    assert len(out) == len(TEXTS)
    json.dumps(out, allow_nan=False, ensure_ascii=False).encode("utf-8")  # no NaN/inf, no lone surrogate
    return "works"


def edit_meta(folder: Path, **changes) -> None:
    meta = json.loads((folder / "enctune.json").read_text())
    for key, value in changes.items():
        if value is DELETE:
            meta.pop(key, None)
        else:
            meta[key] = value
    (folder / "enctune.json").write_text(json.dumps(meta))


# ---- every field of enctune.json, every kind of wrong value ---------------------------------------------

FIELDS = ["format_version", "task", "labels", "label_type", "pair_mode", "task_options", "level", "pooling",
          "layer", "max_length", "dropout", "strategy", "base_model", "columns", "enctune_version",
          "temperature", "template", "adapter", "adapter_merged", "a_field_from_the_future"]


def _nested(depth: int):
    value: object = "x"
    for _ in range(depth):
        value = [value]
    return value


VALUES = {
    "deleted": DELETE, "null": None, "true": True, "zero": 0, "minus one": -1, "minus five": -5, "five": 5,
    "half": 0.5, "2**70": 2**70, "1e308": 1e308, "nan": NAN, "inf": INF, "-inf": -INF, "empty string": "",
    "string": "x", "lone surrogate": "\ud800", "long string": "x" * 100_000, "empty list": [], "list": ["x"],
    "list of numbers": [1, 2], "huge list": [f"l{i}" for i in range(100_000)], "object": {"a": 1},
    "nested 500 deep": _nested(500),
}


@pytest.mark.parametrize("value", list(VALUES))
@pytest.mark.parametrize("field", FIELDS)
def test_every_field_of_enctune_json(field, value, folder):
    edit_meta(folder, **{field: VALUES[value]})
    outcome(folder)


# ---- values that mean something: each is refused, or works, as stated ----------------------------------

WORKS = "works"
SPECIFIC = {
    # the reports of issue 16: tracebacks, a silent inversion
    "dropout 5": ({"dropout": 5}, r"'dropout': expected less than 1"),
    "columns a string": ({"columns": "x"}, r"'columns': expected a JSON object"),
    "max_length -5": ({"max_length": -5}, r"'max_length'"),
    "temperature hot": ({"temperature": "hot"}, r"'temperature': expected a valid number"),
    "label_type int, labels words": ({"label_type": "int"}, r"'label_type' is 'int' but label 'negative'"),
    "temperature -1": ({"temperature": -1}, r"'temperature'"),
    "temperature 0": ({"temperature": 0}, r"'temperature'"),
    "temperature 1e-300": ({"temperature": 1e-300}, r"'temperature'"),
    "temperature 1e300": ({"temperature": 1e300}, r"'temperature'"),
    "temperature 2": ({"temperature": 2}, WORKS),
    # labels
    "labels repeated": ({"labels": ["a", "a"]}, "'a' appears twice"),
    "three labels, two-row head": ({"labels": ["a", "b", "c"]}, r"head\.safetensors.*\[2, 32\].*\[3, 32\]"),
    "one label": ({"labels": ["a"]}, "at least 2"),
    "labels are numbers": ({"labels": [0, 1]}, r"'labels\[0\]': expected a valid string"),
    "label with a lone surrogate": ({"labels": ["ok", "\ud800"]}, r"'labels\[1\]' holds a lone surrogate"),
    "integer labels": ({"labels": ["0", "7"], "label_type": "int"}, WORKS),
    "integer labels, one not plain": ({"labels": ["0", "07"], "label_type": "int"}, "'07'"),
    # the rest of the model
    "pair_mode bi, cross head": ({"pair_mode": "bi"}, r"head\.safetensors: no tensor '2\.bias'"),
    "layer past the encoder": ({"layer": 3}, r"enctune\.json: 'layer' 3"),
    "layer 0": ({"layer": 0}, WORKS),
    "layer -2": ({"layer": -2}, r"'layer'"),
    "max_length 2": ({"max_length": 2}, WORKS),
    "max_length 1": ({"max_length": 1}, r"'max_length'"),
    "max_length 10**6": ({"max_length": 10**6}, r"'max_length'"),
    "unknown pooling": ({"pooling": "median"}, r"'pooling': expected one of"),
    "mean pooling": ({"pooling": "mean"}, WORKS),
    "mask pooling": ({"pooling": "mask"}, WORKS),
    "format from the future": ({"format_version": 2}, "newer enctune"),
    "unknown task": ({"task": "summarise"}, "not known to this version"),
    "template without a slot": ({"template": "no slot"}, r"'template'"),
    "template with two slots": ({"template": "{} and {}"}, r"'template'"),
    "template": ({"template": "{} It was [MASK]."}, WORKS),
    "adapter outside the folder": ({"adapter": "../elsewhere"}, r"'adapter': expected a name inside the folder"),
    "adapter not there": ({"adapter": "adapter"}, r"'adapter' names .* not in the model folder"),
    "pair column": ({"columns": {"text": "text", "pair": "pair", "label": "label"}}, WORKS),
    "column with a number": ({"columns": {"text": 5}}, r"'columns\.text'"),
    "unknown column key": ({"columns": {"texts": "x"}}, r"'columns\.texts'"),
    # task options, through tasks whose head has the same tensors as this classifier's
    "option clashing with a field": ({"task_options": {"labels": ["x"]}}, r"'labels' is not an option"),
    "cosine head": ({"task_options": {"head": "cosine"}}, r"head\.safetensors: no tensor '1\.log_scale'"),
    "unknown head": ({"task_options": {"head": "mlp"}}, r"'task_options\.head'"),
    "cloze activation": ({"task_options": {"head": "cloze", "cloze": {"activation": "evil"}}},
                         r"'task_options\.cloze\.activation'"),
    "option of another task": ({"task_options": {"label_delimiter": ";"}}, WORKS),
    "regress": ({"task": "regress"}, WORKS),
    "regress shift NaN": ({"task": "regress", "task_options": {"shift": [NAN, 0.0]}}, r"'task_options\.shift\[0\]'"),
    "regress scale 1e308": ({"task": "regress", "task_options": {"scale": [1e308, 1.0]}},
                            r"'task_options\.scale\[0\]'"),
    "regress shift too short": ({"task": "regress", "task_options": {"shift": [0.0]}}, "one per target"),
    "regress scale words": ({"task": "regress", "task_options": {"scale": "big"}}, r"'task_options\.scale'"),
    "multilabel": ({"task": "multilabel"}, WORKS),
    "multilabel thresholds NaN": ({"task": "multilabel", "task_options": {"thresholds": [NAN, 0.5]}},
                                  r"'task_options\.thresholds\[0\]'"),
    "multilabel threshold 2": ({"task": "multilabel", "task_options": {"thresholds": [2.0, 0.5]}}, "thresholds"),
    "multilabel one threshold": ({"task": "multilabel", "task_options": {"thresholds": [0.5]}}, "one per label"),
    "multilabel empty delimiter": ({"task": "multilabel", "task_options": {"label_delimiter": ""}},
                                   "label_delimiter"),
    "tag": ({"task": "tag"}, WORKS),
    "extract": ({"task": "extract"}, WORKS),
    "extract answer length 0": ({"task": "extract", "task_options": {"max_answer_length": 0}},
                                "max_answer_length"),
    "extract stride -1": ({"task": "extract", "task_options": {"doc_stride": -1}}, "doc_stride"),
}


@pytest.mark.parametrize("case", list(SPECIFIC))
def test_meaningful_values(case, folder):
    changes, expected = SPECIFIC[case]
    edit_meta(folder, **changes)
    if expected == WORKS:
        assert outcome(folder) == WORKS
    else:
        with pytest.raises(UserError, match=expected):
            enctune.load(folder)


def test_a_training_path_that_is_not_utf8_is_shown_escaped(folder):
    """Python decodes a Latin-1 --model path with surrogate escapes, and base_model records it: only shown
    (/info, the model card), so it is spelled out as an escape rather than refused or sent as is."""
    edit_meta(folder, base_model="/models/caf\udce9")
    assert enctune.load(folder).meta["base_model"] == "/models/caf\\udce9"


def test_a_negative_temperature_no_longer_inverts_predictions(folder):
    """The silent case: -T flips the sign of every logit, so every label turned into the other one."""
    # (the fixture's 4-row validation split keeps no temperature of its own: a fitted-looking one is written)
    edit_meta(folder, temperature=-1.3)
    with pytest.raises(UserError, match="'temperature'"):
        enctune.load(folder)


@pytest.fixture
def heads_built(monkeypatch) -> list[set[str]]:
    """The devices of every classify head built from now on: torch's meta device holds shapes, no memory."""
    from enctune.tasks.classify import ClassifyTask

    real, devices = ClassifyTask.build_head, []

    def spy(self, hidden_size, dropout=0.1):
        head = real(self, hidden_size, dropout)
        devices.append({p.device.type for p in head.parameters()})
        return head

    monkeypatch.setattr(ClassifyTask, "build_head", spy)
    return devices


@pytest.mark.parametrize("n, expected", [
    (5_000_000, r"enctune\.json: [0-9,]+ bytes, where enctune writes a few kilobytes"),  # the case: 84 MB
    (1_100_000, r"'labels': 1,100,000 items, where enctune writes at most 1,048,576"),  # short names: 11 MB
    (200_000, r"head\.safetensors: tensor '1\.weight' has shape \[2, 32\], where enctune\.json implies "
              r"\[200000, 32\]"),
], ids=["5M labels", "1.1M labels", "200k labels"])
def test_many_labels_fail_fast_without_building_a_head(n, expected, folder, heads_built):
    """Before, five million labels built a 5,000,000 x 32 head (7.7 GB at the default encoder's 384) and only
    then compared it with the file. Now the file's size, the label count and the head's header each stop it
    first; the only head built is the shape-only one on the meta device."""
    edit_meta(folder, labels=[f"label {i}" if n == 5_000_000 else f"{i}" for i in range(n)])
    start = time.monotonic()
    with pytest.raises(UserError, match=expected):
        enctune.load(folder)
    assert time.monotonic() - start < 5
    assert all(devices == {"meta"} for devices in heads_built)


def test_the_cli_names_the_field_without_a_traceback(folder, capsys):
    edit_meta(folder, dropout=5)
    assert main(["predict", str(folder), "good film"]) == 2
    err = capsys.readouterr().err
    assert "enctune.json: 'dropout'" in err and "damaged" in err and "Traceback" not in err


# ---- every tensor of head.safetensors ---------------------------------------------------------------------

def _reshape(shape_fn):
    return lambda t: torch.zeros(shape_fn(tuple(t.shape)), dtype=t.dtype)


def _with(value, at=0):
    def put(t):
        t = t.clone()
        t.view(-1)[at] = value
        return t
    return put


TENSOR_CHANGES = {
    "transposed": lambda t: t.T.contiguous() if t.dim() == 2 else t.reshape(1, -1),
    "a row more": _reshape(lambda s: (s[0] + 1, *s[1:])),
    "a row fewer": _reshape(lambda s: (s[0] - 1, *s[1:])),
    "an extra dimension": _reshape(lambda s: (1, *s)),
    "a scalar": _reshape(lambda s: ()),
    "empty": _reshape(lambda s: (0, *s[1:])),
    "nan": _with(NAN), "inf": _with(INF), "-inf": _with(-INF), "nan last": _with(NAN, -1),
    "all nan": lambda t: torch.full_like(t, NAN),
    "large finite": lambda t: torch.full_like(t, 1e4),
    "float16": lambda t: t.half(), "bfloat16": lambda t: t.bfloat16(), "float64": lambda t: t.double(),
    "int64": lambda t: t.long(), "int8": lambda t: t.to(torch.int8), "bool": lambda t: t > 0,
    "uint8": lambda t: t.to(torch.uint8),
}
HEAD_TENSORS = ["1.weight", "1.bias"]
REFUSED_CHANGES = {"transposed", "a row more", "a row fewer", "an extra dimension", "a scalar", "empty", "nan", "inf",
                   "-inf", "nan last", "all nan", "int64", "int8", "bool", "uint8"}


def _edit_head(folder: Path, change) -> None:
    state = load_file(folder / "head.safetensors")
    save_file(change(state), str(folder / "head.safetensors"), metadata={"format": "enctune-head"})


@pytest.mark.parametrize("change", list(TENSOR_CHANGES))
@pytest.mark.parametrize("name", HEAD_TENSORS)
def test_every_tensor_of_the_head(name, change, folder):
    _edit_head(folder, lambda s: {**s, name: TENSOR_CHANGES[change](s[name])})
    assert outcome(folder) == ("refused" if change in REFUSED_CHANGES else WORKS)


@pytest.mark.parametrize("change", ["missing weight", "missing bias", "extra tensor", "renamed", "none",
                                    "other metadata"])
def test_the_heads_set_of_tensors(change, folder):
    state = load_file(folder / "head.safetensors")
    edits = {"missing weight": lambda s: {"1.bias": s["1.bias"]},
             "missing bias": lambda s: {"1.weight": s["1.weight"]},
             "extra tensor": lambda s: {**s, "2.weight": torch.zeros(2)},
             "renamed": lambda s: {"0.weight": s["1.weight"], "1.bias": s["1.bias"]},
             "none": lambda s: {"x": torch.zeros(0)}, "other metadata": lambda s: s}
    save_file(edits[change](state), str(folder / "head.safetensors"), metadata={"format": "something else"})
    assert outcome(folder) == (WORKS if change == "other metadata" else "refused")


def _header(shapes: dict[str, list[int]], data_bytes: int) -> bytes:
    """A safetensors file whose header claims ``shapes`` (F32) over ``data_bytes`` bytes of zeros."""
    header, offset = {}, 0
    for name, shape in shapes.items():
        size = 4 * math.prod(shape)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + b"\0" * data_bytes


# ---- files truncated, replaced, missing -------------------------------------------------------------------

def _truncate(keep):
    return lambda f: f.write_bytes(f.read_bytes()[:keep(f.stat().st_size)])


FILE_DAMAGE = {
    "deleted": lambda f: f.unlink(),
    "empty": lambda f: f.write_bytes(b""),
    "8 bytes": _truncate(lambda n: 8),
    "half": _truncate(lambda n: n // 2),
    "two bytes short": _truncate(lambda n: n - 2),
    "garbage": lambda f: f.write_bytes(np.random.default_rng(0).bytes(4096)),
    "not utf-8": lambda f: f.write_bytes(b'{"task": "classify\xff"}'),
    "a json list": lambda f: f.write_text("[1, 2, 3]"),
    "a json string": lambda f: f.write_text('"classify"'),
    "nested 100000 deep": lambda f: f.write_text("[" * 100_000 + "]" * 100_000),
    "a folder": lambda f: (f.unlink(), f.mkdir()),
    "huge length prefix": lambda f: f.write_bytes(struct.pack("<Q", 2**62) + b"{}"),
    "header claiming 5M rows": lambda f: f.write_bytes(_header({"1.weight": [5_000_000, 32], "1.bias": [2]}, 64)),
}
FOLDER_FILES = ["enctune.json", "head.safetensors"]
ENCODER_FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]


@pytest.mark.parametrize("damage", list(FILE_DAMAGE))
@pytest.mark.parametrize("name", FOLDER_FILES)
def test_damaged_files_of_the_model_folder(name, damage, folder):
    FILE_DAMAGE[damage](folder / name)
    assert outcome(folder) == "refused"


@pytest.mark.parametrize("damage", list(FILE_DAMAGE))
@pytest.mark.parametrize("name", ENCODER_FILES)
def test_damaged_files_of_the_encoder(name, damage, folder, own_encoder):
    FILE_DAMAGE[damage](own_encoder / name)
    outcome(folder)  # a tokenizer_config.json may go missing and the tokenizer still load from tokenizer.json


def test_enctune_json_over_the_size_limit(folder):
    with (folder / "enctune.json").open("a") as f:
        f.write(" " * (64 << 20))
    with pytest.raises(UserError, match="bytes, where enctune writes a few kilobytes"):
        enctune.load(folder)


ENCODER_TAMPERING = {
    "nan weight": ("model.safetensors", "nan"),
    "inf embedding": ("model.safetensors", "inf"),
    "wider config": ("config.json", {"hidden_size": 64}),
    "unknown model type": ("config.json", {"model_type": "no-such-model"}),
    "fewer layers": ("config.json", {"num_hidden_layers": 1}),
    "negative max positions": ("config.json", {"max_position_embeddings": -5}),
    "model_max_length -5": ("tokenizer_config.json", {"model_max_length": -5}),
    "model_max_length words": ("tokenizer_config.json", {"model_max_length": "long"}),
    "no pad token": ("tokenizer_config.json", {"pad_token": None}),
}


@pytest.mark.parametrize("case", list(ENCODER_TAMPERING))
def test_tampered_encoder(case, folder, own_encoder):
    name, change = ENCODER_TAMPERING[case]
    f = own_encoder / name
    if name == "model.safetensors":
        state = load_file(f)
        key = "encoder.layer.0.attention.self.query.weight" if change == "nan" else "embeddings.word_embeddings.weight"
        state[key].view(-1)[3] = NAN if change == "nan" else INF
        save_file(state, str(f), metadata={"format": "pt"})
        with pytest.raises(UserError, match=f"weight '{key}' holds NaN or infinite values"):
            enctune.load(folder)
        return
    f.write_text(json.dumps({**json.loads(f.read_text()), **change}))
    outcome(folder)


def test_damaged_sentence_transformers_files_are_passed_over(tiny_bert, tmp_path):
    """modules.json and the pooling config only suggest a default pooling: damaged, they are passed over (cls)."""
    from enctune.encoders import Encoder

    folder = tmp_path / "enc"
    shutil.copytree(tiny_bert, folder)
    (folder / "modules.json").write_text('[{"type": "Pooling", "path": 5}, "x"')
    (folder / "1_Pooling" / "config.json").write_text("[" * 100_000)
    assert Encoder.load(str(folder)).pooling == "cls"


# ---- Hugging Face classifier folders ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def hf_classifier(tmp_path_factory) -> Path:
    from transformers import BertConfig, BertForSequenceClassification

    from .conftest import _write_tokenizer

    folder = tmp_path_factory.mktemp("hf")
    tok = _write_tokenizer(folder)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64, num_labels=3,
                     id2label={0: "neg", 1: "neutral", 2: "pos"})
    BertForSequenceClassification(cfg).save_pretrained(folder)
    return folder


ID2LABEL = {
    "a gap": ({"0": "neg", "2": "pos"}, "no label for class 1"),
    "a word for a key": ({"0": "neg", "one": "pos"}, "'one' is not a class index"),
    "a padded key": ({"0": "neg", "01": "pos"}, "'01' is not a class index"),
    "negative key": ({"-1": "neg", "0": "pos"}, "'-1' is not a class index"),
    "a list": (["neg", "pos"], "must map the class indices"),
    "empty": ({}, "must map the class indices"),
    "same name twice": ({"0": "pos", "1": "pos"}, "the same name"),
    "lone surrogate": ({"0": "\ud800", "1": "pos"}, "lone surrogate"),
}


@pytest.mark.parametrize("case", list(ID2LABEL))
def test_hf_classifier_label_maps(case, hf_classifier, tmp_path):
    id2label, expected = ID2LABEL[case]
    folder = tmp_path / "hf"
    shutil.copytree(hf_classifier, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["id2label"] = id2label
    cfg.pop("label2id", None)
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match=expected):
        enctune.load(folder)


@pytest.mark.parametrize("damage", ["missing classifier", "nan classifier", "num_labels disagrees", "config list"])
def test_hf_classifier_weights_and_config(damage, hf_classifier, tmp_path):
    folder = tmp_path / "hf"
    shutil.copytree(hf_classifier, folder)
    weights, config = folder / "model.safetensors", folder / "config.json"
    if damage in ("missing classifier", "nan classifier"):
        state = load_file(weights)
        if damage == "missing classifier":
            state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
        else:
            state["classifier.weight"][0, 0] = NAN
        save_file(state, str(weights), metadata={"format": "pt"})
    elif damage == "num_labels disagrees":
        config.write_text(json.dumps({**json.loads(config.read_text()), "num_labels": 2}))
    else:
        config.write_text("[]")
    assert outcome(folder) == "refused"


def test_an_intact_hf_classifier_still_predicts(hf_classifier):
    assert outcome(hf_classifier) == WORKS


# ---- an ONNX export's enctune-onnx.json -------------------------------------------------------------------

@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "onnx"
    assert main(["export", str(trained), "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture
def onnx_folder(exported, tmp_path) -> Path:
    d = tmp_path / "onnx"
    shutil.copytree(exported, d)
    return d


ONNX_FIELDS = ["format_version", "task", "labels", "label_type", "columns", "max_length", "pad_token_id",
               "padding_side", "model_files", "default_precision", "refine_below", "temperature", "inputs"]
ONNX_VALUES = ["deleted", "null", "true", "minus five", "2**70", "nan", "string", "lone surrogate", "list",
               "object", "huge list"]
ONNX_SPECIFIC = {
    "model file outside the folder": ({"model_files": {"fp32": "../onnx/model.onnx"}}, r"'model_files\.fp32'"),
    "model file missing": ({"model_files": {"fp32": "nope.onnx"}}, "onnxruntime could not load it"),
    "three labels, two outputs": ({"labels": ["a", "b", "c"]}, "answers 2 scores"),
    "pad token outside the vocabulary": ({"pad_token_id": 10**6}, "not in tokenizer.json's vocabulary"),
    "temperature -1": ({"temperature": -1}, r"'temperature'"),
    "max_length -5": ({"max_length": -5}, r"'max_length'"),
    "label_type int, labels words": ({"label_type": "int"}, r"'label_type'"),
    "refine_below 2": ({"refine_below": 2}, r"'refine_below'"),
    "task tag": ({"task": "tag"}, "not served from ONNX"),
    "left padding": ({"padding_side": "left"}, WORKS),
}


def _edit_onnx_meta(folder: Path, **changes) -> None:
    f = folder / "enctune-onnx.json"
    meta = json.loads(f.read_text())
    for key, value in changes.items():
        if value is DELETE:
            meta.pop(key, None)
        else:
            meta[key] = value
    f.write_text(json.dumps(meta))


@pytest.mark.parametrize("value", ONNX_VALUES)
@pytest.mark.parametrize("field", ONNX_FIELDS)
def test_every_field_of_enctune_onnx_json(field, value, onnx_folder):
    _edit_onnx_meta(onnx_folder, **{field: VALUES[value]})
    outcome(onnx_folder)


@pytest.mark.parametrize("case", list(ONNX_SPECIFIC))
def test_meaningful_onnx_values(case, onnx_folder):
    changes, expected = ONNX_SPECIFIC[case]
    _edit_onnx_meta(onnx_folder, **changes)
    if expected == WORKS:
        assert outcome(onnx_folder) == WORKS
    else:
        with pytest.raises(UserError, match=expected):
            enctune.load(onnx_folder)


@pytest.mark.parametrize("damage", ["empty", "half", "garbage", "a json list", "nested 100000 deep"])
def test_damaged_enctune_onnx_json(damage, onnx_folder):
    FILE_DAMAGE[damage](onnx_folder / "enctune-onnx.json")
    assert outcome(onnx_folder) == "refused"


def test_finite_weights_that_overflow_in_the_forward_pass_are_refused_not_nan(folder):
    """Every weight passes the finiteness check, yet 3e38 * features overflows float32: the answer must be a
    clear refusal, not NaN probabilities (null over HTTP)."""
    _edit_head(folder, lambda s: {k: torch.full_like(v, 3e38) for k, v in s.items()})
    assert outcome(folder) == "refused"
