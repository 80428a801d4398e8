"""A BERT-style classifier's last layer computed for the first token only gives the same logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import enctune
from enctune.speed.first_token import FirstTokenLayer, first_token_only, wrap_last_layer

TEXTS = ["good film", "a really dull and boring movie with a plot", "bad", "the acting was superb and lovely"]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_first_token_logits_match_the_whole_layer(tiny_bert, tmp_path, attn):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=3,
                                                               attn_implementation=attn).eval()
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    batch = tok(TEXTS, padding=True, return_tensors="pt")  # padded rows: the mask matters
    with torch.no_grad():
        whole = model(**batch).logits
        wrapper = wrap_last_layer(model)
        assert isinstance(wrapper, FirstTokenLayer) and model.bert.encoder.layer[-1] is wrapper
        assert torch.equal(model(**batch).logits, whole)  # switched off: the layer as it was
        with first_token_only(wrapper):
            logits = model(**batch).logits
            last = model.bert(**batch).last_hidden_state
    assert last.shape[1] == 1  # the last layer produced the first position only
    torch.testing.assert_close(logits, whole, atol=1e-5, rtol=1e-5)


def test_hf_folder_predicts_through_the_first_token_layer_and_embeds_whole(tiny_bert, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2, id2label={0: "n", 1: "p"},
                                                               label2id={"n": 0, "p": 1})
    model.save_pretrained(tmp_path / "hf")
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(tmp_path / "hf")
    pred = enctune.load(tmp_path / "hf")
    assert isinstance(pred.model.model.bert.encoder.layer[-1], FirstTokenLayer)
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        base = model.eval().bert(**batch).last_hidden_state
        expected = torch.softmax(model(**batch).logits, -1).numpy()
    np.testing.assert_allclose(pred.predict_proba(TEXTS), expected, atol=1e-5)
    # the encoder alone (embeddings, mean pooling) still runs every position through the last layer
    m = batch["attention_mask"].unsqueeze(-1).float()
    mean = ((base * m).sum(1) / m.sum(1)).numpy()
    np.testing.assert_allclose(pred.embed(TEXTS, pooling="mean"), mean, atol=1e-5)


def test_models_it_does_not_apply_to_are_left_alone(tmp_path):
    from transformers import GPT2Config, GPT2ForSequenceClassification

    model = GPT2ForSequenceClassification(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, num_labels=2))
    assert wrap_last_layer(model) is None
