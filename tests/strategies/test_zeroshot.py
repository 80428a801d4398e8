"""``zeroshot``: similarity and cloze modes on tiny random encoders, checked against scores computed here
with transformers alone; reload, evaluate, and the user errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import enctune
from enctune.encoders import Encoder

from ..conftest import _write_tokenizer, make_rows, write_jsonl

TEXTS = [r["text"] for r in make_rows(12, seed=9)] + ["good", "a terrible mess", "it"]
SIMILARITY_LABELS = "positive: good|great;negative: bad|awful"
CLOZE_LABELS = "positive: great;negative: terrible"


@pytest.fixture(scope="module")
def tiny_mlm(tmp_path_factory):
    """A 2-layer random BERT saved with its masked-LM head (BertForMaskedLM)."""
    from transformers import BertConfig, BertForMaskedLM

    folder = tmp_path_factory.mktemp("tiny_mlm")
    tok = _write_tokenizer(folder)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64, initializer_range=0.2)
    model = BertForMaskedLM(cfg)
    with torch.no_grad():  # a head whose every part matters: non-trivial layer norm and bias
        model.cls.predictions.transform.LayerNorm.weight.uniform_(0.5, 1.5)
        model.cls.predictions.transform.LayerNorm.bias.normal_(0, 0.1)
        model.cls.predictions.bias.normal_(0, 0.5)
    model.save_pretrained(folder)
    return folder


def _train(model, data, out, **kw):
    kw.setdefault("precision", "fp32")
    return enctune.train(data=str(data), out=str(out), model=str(model), strategy="zeroshot", **kw)


def _mean_pooled_unit(folder, texts: list[str]) -> torch.Tensor:
    """Unit-length mean-pooled last hidden states, with transformers alone."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        h = model(**enc).last_hidden_state  # (B, T, H)
    m = enc["attention_mask"].unsqueeze(-1).float()
    return F.normalize((h * m).sum(1) / m.sum(1), dim=-1)


def _mlm_scores(folder, texts: list[str], template: str, words: list[str]) -> np.ndarray:
    """(B, C): the MLM model's logits at the mask token for each word, with transformers alone."""
    from transformers import AutoTokenizer, BertForMaskedLM

    tok = AutoTokenizer.from_pretrained(folder)
    model = BertForMaskedLM.from_pretrained(folder).eval()
    enc = tok([template.format(t) for t in texts], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits  # (B, T, V)
    rows, cols = (enc["input_ids"] == tok.mask_token_id).nonzero(as_tuple=True)
    assert rows.tolist() == list(range(len(texts)))  # one mask per text
    return logits[rows, cols][:, tok.convert_tokens_to_ids(words)].numpy()


def test_similarity_is_the_cosine_argmax_and_reloads(tiny_bert, sentiment_dir, tmp_path):
    out = tmp_path / "run"
    template = "the film was {}"
    run = _train(tiny_bert, sentiment_dir, out, labels=SIMILARITY_LABELS, template=template, init_head="random")
    labels = run.predictor.labels
    assert labels == ["negative", "positive"]
    phrases = {"negative": ["bad", "awful"], "positive": ["good", "great"]}
    e = torch.stack([F.normalize(_mean_pooled_unit(tiny_bert, [template.format(p) for p in phrases[lab]]).sum(0),
                                 dim=0) for lab in labels])  # (C, H)
    test = [json.loads(line) for line in (sentiment_dir / "test.jsonl").read_text().splitlines()]
    for texts in (TEXTS, [r["text"] for r in test]):
        want = [labels[i] for i in (_mean_pooled_unit(tiny_bert, texts) @ e.T).argmax(1).tolist()]
        assert set(want) == set(labels)  # both labels predicted: the comparison is not a constant
        assert [p["label"] for p in run.predictor.predict(texts)] == want
    metrics = json.loads((out / "metrics.json").read_text())
    want_acc = float(np.mean([w == r["label"] for w, r in zip(want, test, strict=True)]))
    assert metrics["test"]["accuracy"] == pytest.approx(want_acc)
    assert metrics["strategy"] == "zeroshot" and metrics["costs"]["trainable_params"] == 0
    assert len(metrics["history"]) == 1 and metrics["history"][0]["score"] == metrics["validation"]["accuracy"]
    meta = json.loads((out / "model" / "enctune.json").read_text())
    assert meta["task_options"]["head"] == "cosine" and "template" not in meta
    # nothing trained: the cosine scale is still its default, 20
    assert float(run.predictor.model.head[1].log_scale.detach().exp()) == pytest.approx(20.0)

    model = enctune.load(out)
    np.testing.assert_allclose(model.predict_proba(TEXTS), run.predictor.predict_proba(TEXTS), atol=1e-6)
    assert [p["label"] for p in model.predict(TEXTS)] == [p["label"] for p in run.predictor.predict(TEXTS)]
    scores = enctune.evaluate(out, sentiment_dir / "test.jsonl")
    assert scores["accuracy"] == pytest.approx(metrics["test"]["accuracy"])


def test_cloze_scores_are_the_mlm_logits_at_the_mask(tiny_mlm, sentiment_dir, tmp_path):
    out = tmp_path / "run"
    run = _train(tiny_mlm, sentiment_dir, out, zeroshot_mode="cloze", labels=CLOZE_LABELS, calibrate=False)
    want = _mlm_scores(tiny_mlm, TEXTS, "{} It was [MASK].", ["terrible", "great"])  # label order: neg, pos
    np.testing.assert_allclose(run.predictor.logits(TEXTS), want, rtol=1e-4, atol=1e-4)
    meta = json.loads((out / "model" / "enctune.json").read_text())
    assert meta["pooling"] == "mask" and meta["template"] == "{} It was [MASK]."
    assert meta["task_options"]["head"] == "cloze" and meta["task_options"]["cloze"]["activation"] == "gelu"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["costs"]["trainable_params"] == 0 and metrics["costs"]["zeroshot_mode"] == "cloze"

    model = enctune.load(out)  # prediction wraps texts in the saved template
    np.testing.assert_allclose(model.logits(TEXTS), want, rtol=1e-4, atol=1e-4)
    assert [p["label"] for p in model.predict(TEXTS)] == [["negative", "positive"][i] for i in want.argmax(1)]
    scores = enctune.evaluate(out, sentiment_dir / "test.jsonl")
    assert scores["accuracy"] == pytest.approx(metrics["test"]["accuracy"])


def test_cloze_own_template_and_label_names_as_verbalisers(tiny_mlm, tmp_path):
    data = tmp_path / "data"
    for split, n, seed in (("train", 20, 1), ("validation", 12, 2), ("test", 12, 3)):
        write_jsonl(data / f"{split}.jsonl", make_rows(n, seed=seed, labels=("good", "bad")))
    run = _train(tiny_mlm, data, tmp_path / "run", zeroshot_mode="cloze", template="[MASK] : {}", calibrate=False)
    want = _mlm_scores(tiny_mlm, TEXTS, "[MASK] : {}", ["bad", "good"])
    np.testing.assert_allclose(enctune.load(tmp_path / "run").logits(TEXTS), want, rtol=1e-4, atol=1e-4)
    assert run.metrics["strategy"] == "zeroshot"


def test_template_keeps_the_mask_when_a_text_is_cut(tiny_mlm):
    enc = Encoder.load(str(tiny_mlm), pooling="mask", max_length=10)
    enc.template = "{} It was [MASK]."
    long_text = " ".join(["good film"] * 20)
    tokens = enc.tokenize([long_text, "good [MASK] film"])
    mask_id = enc.tokenizer.mask_token_id
    assert len(tokens.input_ids[0]) == 10 and tokens.truncated == 1
    assert [ids.count(mask_id) for ids in tokens.input_ids] == [1, 1]  # a typed mask is dropped, the template's kept
    tail = enc.tokenizer("It was [MASK].", add_special_tokens=False)["input_ids"] + [enc.tokenizer.sep_token_id]
    assert tokens.input_ids[0][-len(tail):] == tail


def test_errors(tiny_bert, tiny_mlm, sentiment_dir, tmp_path):
    reg = tmp_path / "reg.jsonl"
    write_jsonl(reg, [{"text": r["text"], "label": float(i % 5)} for i, r in enumerate(make_rows(30))])
    cases = [
        (dict(model=tiny_bert, data=reg, task="regress"), "the 'regress' task cannot"),
        (dict(model=tiny_bert, data=sentiment_dir, zeroshot_mode="cloze", labels=CLOZE_LABELS),
         "no trained masked-LM head"),
        (dict(model=tiny_mlm, data=sentiment_dir, zeroshot_mode="cloze", labels="positive: great;negative: zzzz"),
         "verbaliser 'zzzz' of label 'negative' is not in the vocabulary"),
        (dict(model=tiny_mlm, data=sentiment_dir, zeroshot_mode="cloze"),  # "positive" is not a known word
         "verbaliser 'negative'"),
        (dict(model=tiny_mlm, data=sentiment_dir, zeroshot_mode="cloze", labels=CLOZE_LABELS, template="{} it was"),
         "in cloze mode the template"),
    ]
    for i, (kw, match) in enumerate(cases):
        out = tmp_path / f"run{i}"
        with pytest.raises(enctune.UserError, match=match):
            _train(kw.pop("model"), kw.pop("data"), out, **kw)
        assert not out.exists()
