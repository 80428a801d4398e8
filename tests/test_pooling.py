"""Pooling maths, including the last real token under left and right padding."""

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
