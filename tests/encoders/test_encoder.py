"""Pooling maths, including the last real token under left and right padding."""

import json

import numpy as np
import pytest
import torch

from enctune.encoders.pooling import POOLINGS


def _batch():
    h = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)  # (B=2, T=4, H=3)
    m = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    return h, m


def test_mean_ignores_padding():
    h, m = _batch()
    out = POOLINGS["mean"](h, m)
    assert torch.allclose(out[0], h[0, :3].mean(0))
    assert torch.allclose(out[1], h[1, :2].mean(0))


def test_max_ignores_padding():
    h, m = _batch()
    h[0, 3] = 1e6  # a padded position must never win
    out = POOLINGS["max"](h, m)
    assert torch.equal(out[0], h[0, 2])


def test_cls_is_first_token():
    h, m = _batch()
    assert torch.equal(POOLINGS["cls"](h, m), h[:, 0])


def test_last_right_and_left_padding():
    h, m = _batch()
    assert torch.equal(POOLINGS["last"](h, m), torch.stack([h[0, 2], h[1, 1]]))
    left = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1]])
    assert torch.equal(POOLINGS["last"](h, left), h[:, 3])


def test_bf16_encoding_uses_a_copy_and_leaves_the_encoder_in_fp32(tiny_bert):
    import numpy as np

    from enctune.encoders import Encoder
    from enctune.speed.bf16 import BF16_COPY_MIN_ROWS

    enc = Encoder.load(str(tiny_bert))
    network = enc.model
    texts = [f"good movie number {i}" if i % 2 else f"bad film {i} again" for i in range(BF16_COPY_MIN_ROWS + 4)]
    tokens = enc.tokenize(texts)
    key = (enc.layer, enc.pooling)
    exact = enc.encode(tokens, precision="fp32")[key]
    fast = enc.encode(tokens, precision="bf16")[key]
    assert enc.model is network and {p.dtype for p in network.parameters()} == {torch.float32}
    cos = (exact * fast).sum(1) / (np.linalg.norm(exact, axis=1) * np.linalg.norm(fast, axis=1))
    assert cos.min() > 0.99
    assert not np.array_equal(exact, fast)  # the bf16 path really ran


# ---- causal encoders -----------------------------------------------------------------------------
def test_causal_last_token_pooling_is_padding_side_independent(tiny_gpt2):
    from enctune.encoders import Encoder

    enc = Encoder.load(str(tiny_gpt2))
    assert enc.tokenizer.pad_token is not None
    texts = ["good", "the film was really a very good movie"]
    right = enc.encode(enc.tokenize(texts))[(-1, "last")]
    enc.tokenizer.padding_side = "left"
    left = enc.encode(enc.tokenize(texts))[(-1, "last")]
    alone = np.stack([enc.encode(enc.tokenize([t]))[(-1, "last")][0] for t in texts])
    np.testing.assert_allclose(right, alone, atol=1e-5)
    np.testing.assert_allclose(left, alone, atol=1e-5)


def test_a_causal_tokenizer_without_pad_token_pads_with_end_of_text(tiny_gpt2, tmp_path):
    import shutil

    from enctune.encoders import Encoder

    folder = tmp_path / "gpt2-nopad"
    shutil.copytree(tiny_gpt2, folder)
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    cfg.pop("pad_token", None)
    cfg["eos_token"] = "[SEP]"
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    enc = Encoder.load(str(folder))
    assert enc.tokenizer.pad_token == "[SEP]" and enc.pooling == "last"
    texts = ["good", "the film was really a very good movie", "bad it"]
    together = enc.encode(enc.tokenize(texts))[(-1, "last")]
    alone = np.stack([enc.encode(enc.tokenize([t]))[(-1, "last")][0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_the_pooling_a_sentence_transformers_folder_names_is_read_in_either_spelling(tmp_path):
    """sentence-transformers up to 5.1 writes one flag per mode; later versions one "pooling_mode" string (a
    folder it saves today said mean that way, and was read as cls)."""
    from enctune.encoders.resolve import default_pooling

    class Config:
        model_type, architectures = "bert", ["BertModel"]

    for i, (config, want) in enumerate([({"pooling_mode_mean_tokens": True}, "mean"),
                                        ({"pooling_mode": "mean"}, "mean"), ({"pooling_mode": ["max"]}, "max"),
                                        ({"pooling_mode": "lasttoken"}, "last"), ({"pooling_mode": "cls"}, "cls")]):
        folder = tmp_path / str(i)
        (folder / "1_Pooling").mkdir(parents=True)
        (folder / "1_Pooling" / "config.json").write_text(json.dumps(config))
        assert default_pooling(str(folder), Config()) == want, config
    (tmp_path / "w" / "1_Pooling").mkdir(parents=True)
    (tmp_path / "w" / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "weightedmean"}))
    with pytest.warns(UserWarning, match="pooling 'weightedmean' is not one enctune computes; using cls"):
        assert default_pooling(str(tmp_path / "w"), Config()) == "cls"
