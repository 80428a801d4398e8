"""The cheaper CPU dropout: its statistics, its gradient, the attention function that uses it, and that a
training run puts the model back exactly as it found it."""

import pytest
import torch
from torch import nn
from transformers import AutoModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from enctune.speed import dropout as fast_dropout


def test_mask_drops_p_and_keeps_the_mean():
    torch.manual_seed(0)
    x = torch.ones(400_000)
    for p in (0.1, 0.3, 0.5):
        y = fast_dropout.dropout(x, p)
        dropped = float((y == 0).float().mean())
        assert abs(dropped - p) < 0.005, (p, dropped)
        assert abs(float(y.mean()) - 1.0) < 0.01
    assert torch.equal(fast_dropout.dropout(x, 0.1, training=False), x)
    assert torch.equal(fast_dropout.dropout(x, 1.0), torch.zeros_like(x))


def test_masks_differ_between_calls_and_repeat_under_a_seed():
    x = torch.ones(10_000)
    torch.manual_seed(3)
    a, b = fast_dropout.dropout(x, 0.2), fast_dropout.dropout(x, 0.2)
    torch.manual_seed(3)
    assert torch.equal(fast_dropout.dropout(x, 0.2), a)
    assert not torch.equal(a, b)


def test_gradient_is_the_same_mask_and_scale():
    torch.manual_seed(1)
    x = torch.randn(64, 33, requires_grad=True)
    y = fast_dropout.dropout(x, 0.25)
    g = torch.randn_like(y)
    y.backward(g)
    kept = (y != 0).float()
    scale = 32768 / (32768 - round(0.25 * 32768))
    torch.testing.assert_close(y, x.detach() * kept * scale)
    torch.testing.assert_close(x.grad, g * kept * scale)


def test_odd_sizes_and_bf16():
    torch.manual_seed(2)
    for shape in [(1,), (3, 5), (7, 1, 3)]:
        x = torch.ones(shape, dtype=torch.bfloat16)
        y = fast_dropout.dropout(x, 0.5)
        assert y.shape == x.shape and y.dtype == torch.bfloat16
        assert set(y.unique().tolist()) <= {0.0, 2.0}


class _Attn(nn.Module):
    def __init__(self, causal: bool, groups: int = 1):
        super().__init__()
        self.is_causal, self.num_key_value_groups = causal, groups
        self.training = True


@pytest.mark.parametrize("mask_kind", ["none", "bool", "float", "causal"])
def test_attention_without_dropout_equals_sdpa(mask_kind):
    """With the dropout rate so small that no element drops, the function computes what sdpa computes."""
    torch.manual_seed(4)
    b, h, q, d = 2, 4, 6, 8
    groups = 2 if mask_kind == "causal" else 1
    query = torch.randn(b, h, q, d)
    key, value = torch.randn(b, h // groups, q, d), torch.randn(b, h // groups, q, d)
    mask = None
    if mask_kind == "bool":
        mask = torch.ones(b, 1, q, q, dtype=torch.bool)
        mask[0, :, :, 4:] = False
    elif mask_kind == "float":
        mask = torch.zeros(b, 1, q, q)
        mask[1, :, :, 3:] = torch.finfo(torch.float32).min
    module = _Attn(causal=mask_kind == "causal", groups=groups)
    tiny = 1e-9  # rounds to zero dropped levels of 32768: the mask keeps everything, scale 1
    ours, _ = fast_dropout.attention(module, query, key, value, mask, dropout=tiny, scaling=0.3)
    ref, _ = sdpa_attention_forward(module, query, key, value, mask, dropout=0.0, scaling=0.3)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_attention_dropout_drops_probabilities():
    torch.manual_seed(5)
    module = _Attn(causal=False)
    query = key = torch.zeros(1, 2, 64, 4)  # uniform attention: every probability 1/64
    value = torch.ones(1, 2, 64, 4)
    out, _ = fast_dropout.attention(module, query, key, value, None, dropout=0.5)
    # each output is (kept count / 64) * 2: its mean is 1 and it varies from row to row
    assert abs(float(out.mean()) - 1.0) < 0.05 and float(out.std()) > 0.05


def test_installed_swaps_and_restores(tiny_bert):
    model = AutoModel.from_pretrained(tiny_bert)
    model.train()
    before = [type(m) for m in model.modules()]
    assert nn.Dropout in before
    ids = torch.tensor([[5, 6, 7, 8, 0], [5, 9, 10, 0, 0]])
    mask = (ids != 0).long()
    with fast_dropout.installed(model, "cpu"):
        assert model.config._attn_implementation == fast_dropout.ATTENTION_NAME
        assert not any(type(m) is nn.Dropout and m.p > 0 for m in model.modules())
        torch.manual_seed(0)
        a = model(input_ids=ids, attention_mask=mask).last_hidden_state
        b = model(input_ids=ids, attention_mask=mask).last_hidden_state
        assert not torch.allclose(a, b)  # dropout is active
        model.eval()
        with torch.no_grad():
            inside = model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert model.config._attn_implementation == "sdpa"
    assert [type(m) for m in model.modules()] == before
    assert not model.training  # the mode set inside the block is kept
    with torch.no_grad():
        outside = model(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(inside, outside)


def test_installed_changes_nothing_off_cpu(tiny_bert):
    model = AutoModel.from_pretrained(tiny_bert)
    with fast_dropout.installed(model, "cuda"):
        assert model.config._attn_implementation == "sdpa"
        assert any(type(m) is nn.Dropout for m in model.modules())
