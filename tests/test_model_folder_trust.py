"""No loader runs code from a model folder (issue 16, item 5).

transformers runs a Python file shipped with a checkpoint when its config.json or tokenizer_config.json names
one (``auto_map``), and with trust_remote_code unset it asks "run the custom code? [y/N]" on the terminal: a
piped "y" ran it. Each test here builds a real folder whose ``modeling_evil.py`` writes a sentinel file when
imported, and checks that the sentinel never appears, the load is a UserError, and nothing is asked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import enctune
from enctune.encoders import Encoder
from enctune.errors import UserError

from .conftest import ROOT, _write_tokenizer, make_rows, write_jsonl

EVIL_MODULE = """
from pathlib import Path
Path({sentinel!r}).write_text("the folder's code ran")
from transformers import BertConfig, BertForSequenceClassification, BertModel
class EvilConfig(BertConfig):
    model_type = "evilbert"
class EvilClassifier(BertForSequenceClassification):
    config_class = EvilConfig
class EvilModel(BertModel):
    config_class = EvilConfig
"""
AUTO_MAP = {"AutoConfig": "modeling_evil.EvilConfig", "AutoModel": "modeling_evil.EvilModel",
            "AutoModelForSequenceClassification": "modeling_evil.EvilClassifier"}


def _edit_json(f: Path, **changes) -> None:
    data = json.loads(f.read_text())
    data.update(changes)
    f.write_text(json.dumps(data))


def _plant(folder: Path, sentinel: Path) -> None:
    """Put modeling_evil.py in ``folder`` and point config.json at it, as a custom-code checkpoint does."""
    (folder / "modeling_evil.py").write_text(EVIL_MODULE.format(sentinel=str(sentinel)))
    _edit_json(folder / "config.json", model_type="evilbert", auto_map=AUTO_MAP)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    """A tiny BERT ...ForSequenceClassification folder saved with save_pretrained (no custom code yet)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("hf_classifier")
    tok = _write_tokenizer(folder)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64, num_labels=2,
                     id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1})
    BertForSequenceClassification(cfg).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def run_dir(tiny_bert, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("trust")
    data = write_jsonl(tmp / "train.jsonl", make_rows(40, seed=1))
    enctune.train(data=str(data), out=str(tmp / "run"), model=str(tiny_bert), strategy="probe", epochs=2)
    return tmp / "run"


@pytest.fixture
def evil(classifier, tmp_path) -> tuple[Path, Path]:
    """(folder, sentinel): the classifier with its config.json pointing at modeling_evil.py."""
    folder, sentinel = tmp_path / "evil", tmp_path / "sentinel"
    shutil.copytree(classifier, folder)
    _plant(folder, sentinel)
    return folder, sentinel


def _predict_cli(folder: Path) -> subprocess.CompletedProcess:
    """``enctune predict`` in a fresh interpreter, with "y" piped in, as a user answering the prompt would."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "enctune", "predict", str(folder), "good film"], input="y\ny\n",
                          capture_output=True, text=True, env=env, timeout=300)


def test_enctune_load_refuses_a_classifier_with_auto_map(evil):
    folder, sentinel = evil
    with pytest.raises(UserError, match=r"config\.json: 'auto_map'.*does not run code from model folders"):
        enctune.load(folder)
    assert not sentinel.exists()


def test_cli_predict_answers_no_prompt_and_runs_nothing(evil):
    folder, sentinel = evil
    r = _predict_cli(folder)
    assert r.returncode == 2, r.stderr
    assert "does not run code from model folders" in r.stderr
    assert "Traceback" not in r.stderr and "[y/N]" not in r.stdout + r.stderr
    assert not sentinel.exists()


def test_auto_map_beside_a_known_model_type_is_refused_too(classifier, tmp_path):
    """model_type bert has transformers' own class, which transformers would quietly use; the folder still
    asks for its code, so it is refused rather than loaded as something it says it is not."""
    folder = tmp_path / "evil"
    shutil.copytree(classifier, folder)
    _plant(folder, tmp_path / "sentinel")
    _edit_json(folder / "config.json", model_type="bert")
    with pytest.raises(UserError, match="auto_map"):
        enctune.load(folder)


@pytest.mark.parametrize("tokenizer_config", [
    {"auto_map": {"AutoTokenizer": [None, "tokenization_evil.EvilTokenizer"]}},
    {"tokenizer_class": "EvilTokenizer"},
    {"tokenizer_class": "AutoModel"},  # a transformers class, but not a tokenizer
])
def test_a_tokenizer_that_needs_custom_code_is_refused(tokenizer_config, classifier, tmp_path):
    folder = tmp_path / "evil"
    shutil.copytree(classifier, folder)
    (folder / "tokenization_evil.py").write_text(f"open({str(tmp_path / 'sentinel')!r}, 'w').write('ran')\n")
    _edit_json(folder / "tokenizer_config.json", **tokenizer_config)
    with pytest.raises(UserError, match=r"tokenizer_config\.json.*does not run code from model folders"):
        enctune.load(folder)
    assert not (tmp_path / "sentinel").exists()


def test_a_run_folder_whose_encoder_asks_for_code_is_refused(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    _plant(run / "model" / "encoder", tmp_path / "sentinel")
    with pytest.raises(UserError, match=r"encoder/config\.json: 'auto_map'.*prediction never does"):
        enctune.load(run)
    assert not (tmp_path / "sentinel").exists()


def test_transformers_is_told_false_even_past_enctunes_own_check(evil, monkeypatch):
    """Defence in depth: with the auto_map check switched off, transformers is still told
    trust_remote_code=False (never None, which prompts), so it refuses by itself and nothing runs."""
    import enctune.encoders.resolve as resolve

    folder, sentinel = evil
    monkeypatch.setattr(resolve, "custom_code", lambda source: None, raising=False)
    monkeypatch.setattr("builtins.input", lambda *a: pytest.fail("transformers asked on the terminal"))
    with pytest.raises(UserError, match="could not load the classifier"):
        enctune.load(folder)
    assert not sentinel.exists()


def test_training_runs_a_folders_code_only_with_trust_remote_code(tiny_bert, tmp_path):
    """The one opt-in: Encoder.load(trust_remote_code=True), which ``--trust-remote-code`` sets."""
    folder, sentinel = tmp_path / "enc", tmp_path / "sentinel"
    shutil.copytree(tiny_bert, folder)
    _plant(folder, sentinel)
    with pytest.raises(UserError, match="--trust-remote-code"):
        Encoder.load(str(folder))
    assert not sentinel.exists()
    Encoder.load(str(folder), trust_remote_code=True)
    assert sentinel.exists()
