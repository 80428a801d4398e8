"""Shared fixtures: tiny random encoders built here (no downloads) and small data files."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

POSITIVE = ["good", "great", "fine", "lovely", "superb", "excellent", "witty", "gorgeous"]
NEGATIVE = ["bad", "awful", "poor", "dull", "boring", "terrible", "mess", "ugly"]
FILLER = ["the", "film", "was", "a", "movie", "plot", "and", "very", "really", "story", "acting", "it"]
ROOT = Path(__file__).resolve().parents[1]


def pytest_report_header(config):
    """Which precision ``--precision auto`` takes in this run: ENCTUNE_PRECISION=fp32 or bf16 forces it for the
    whole suite (``make test-fp32``, ``make test-bf16``); unset, the CPU decides."""
    from enctune.precision import PRECISION_ENV, resolve_precision

    forced = os.environ.get(PRECISION_ENV)
    return f"enctune: --precision auto resolves to {resolve_precision('auto')}" + (
        f" (forced by {PRECISION_ENV})" if forced else " (this CPU's choice)")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ENCTUNE_CACHE", str(tmp_path / "feature-cache"))


def _write_tokenizer(folder: Path):
    """A word-level BERT-style tokenizer built from a tiny vocabulary with the tokenizers library."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = list(dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + POSITIVE + NEGATIVE + FILLER +
                               list("abcdefghij")))
    ids = {w: i for i, w in enumerate(vocab)}
    core = Tokenizer(models.WordPiece(ids, unk_token="[UNK]"))
    core.normalizer = normalizers.BertNormalizer(lowercase=True)
    core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])])
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                  sep_token="[SEP]", mask_token="[MASK]", model_max_length=64,
                                  model_input_names=["input_ids", "token_type_ids", "attention_mask"])
    folder.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(folder)
    return tok


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide random BERT with a tiny word-level vocabulary."""
    import torch
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny_bert")
    tok = _write_tokenizer(folder)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64,
                     initializer_range=0.5)
    BertModel(cfg).save_pretrained(folder)
    # a sentence-transformers pooling config, as the default encoder has: enctune reads mean pooling from it
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    return folder


@pytest.fixture(scope="session")
def tiny_bert_std(tmp_path_factory) -> Path:
    """tiny_bert with the usual small initialisation (0.02): every token keeps its identity through the
    layers, which per-token tasks (tag, extract) need; large random weights wash it out."""
    import torch
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny_bert_std")
    tok = _write_tokenizer(folder)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64, initializer_range=0.02)
    BertModel(cfg).save_pretrained(folder)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    return folder


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> Path:
    """A 2-layer random GPT-2 (causal): pooling defaults to the last real token."""
    import torch
    from transformers import GPT2Config, GPT2Model

    folder = tmp_path_factory.mktemp("tiny_gpt2")
    tok = _write_tokenizer(folder)
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=tok.vocab_size, n_embd=32, n_layer=2, n_head=2, n_positions=64,
                     initializer_range=0.5)
    GPT2Model(cfg).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_gpt2_std(tmp_path_factory) -> Path:
    """tiny_gpt2 with the usual small initialisation (0.02). A pre-norm network adds every layer into one
    residual stream, and with tiny_gpt2's large random weights (0.5) what reaches the last token is chaotic:
    its toy regression scored 0.38-0.70 test Spearman across seeds and learning rates, 0.83-0.94 with 0.02."""
    import torch
    from transformers import GPT2Config, GPT2Model

    folder = tmp_path_factory.mktemp("tiny_gpt2_std")
    tok = _write_tokenizer(folder)
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=tok.vocab_size, n_embd=32, n_layer=2, n_head=2, n_positions=64,
                     initializer_range=0.02)
    GPT2Model(cfg).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert_no_dropout(tmp_path_factory) -> Path:
    """Like tiny_bert, without dropout: one and two processes then see the same computation."""
    import torch
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny_bert_nodrop")
    tok = _write_tokenizer(folder)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64, initializer_range=0.5,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    BertModel(cfg).save_pretrained(folder)
    return folder


def make_rows(n: int, seed: int = 0, labels=("positive", "negative")) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        lab = labels[i % len(labels)]
        words = POSITIVE if lab == labels[0] else NEGATIVE
        text = " ".join(rng.sample(FILLER, 2) + rng.sample(words, 3) + rng.sample(FILLER, 1))
        rows.append({"text": text, "label": lab})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def sentiment_dir(tmp_path) -> Path:
    """A folder with train/validation/test JSONL splits of a toy sentiment task."""
    d = tmp_path / "data"
    write_jsonl(d / "train.jsonl", make_rows(120, seed=1))
    write_jsonl(d / "validation.jsonl", make_rows(40, seed=2))
    write_jsonl(d / "test.jsonl", make_rows(40, seed=3))
    return d
