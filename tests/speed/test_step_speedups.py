"""What the training loop does to make a CPU step cheaper must not change what the step computes: clipping
inside the fused optimizer step, the bf16 residual stream, and an encoder's unused pooler left out."""

import torch
from torch import nn
from transformers import AutoModel

from enctune.encoders import Encoder
from enctune.speed.bf16 import embeddings_in_autocast_dtype
from enctune.speed.clip import clip_in_fused_step


def _two_copies(seed: int):
    torch.manual_seed(seed)
    a = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 3))
    b = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 3))
    b.load_state_dict(a.state_dict())
    return a, b


def _grads(model, x, y):
    nn.functional.cross_entropy(model(x), y).backward()


def test_clipping_inside_the_fused_step_matches_clip_grad_norm():
    x, y = torch.randn(64, 16) * 10, torch.randint(0, 3, (64,))
    for max_norm in (0.05, 1e6):  # clipped, and far above the norm (no clipping)
        a, b = _two_copies(0)
        opt_a = torch.optim.AdamW(a.parameters(), lr=1e-2, fused=True)
        opt_b = torch.optim.AdamW(b.parameters(), lr=1e-2, fused=True)
        for _ in range(3):
            _grads(a, x, y)
            norm = torch.nn.utils.clip_grad_norm_(list(a.parameters()), max_norm)
            opt_a.step()
            opt_a.zero_grad()
            _grads(b, x, y)
            clip_in_fused_step(opt_b, list(b.parameters()), max_norm)
            opt_b.step()
            opt_b.zero_grad()
        assert (float(norm) > max_norm) == (max_norm < 1)
        for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
            torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


def test_embeddings_hand_autocast_their_dtype_inside_the_block_only(tiny_bert):
    model = AutoModel.from_pretrained(tiny_bert)
    ids = torch.randint(3, model.config.vocab_size, (2, 7))
    emb = model.get_input_embeddings()
    with embeddings_in_autocast_dtype(model, "cpu"):
        assert emb(ids).dtype == torch.float32  # autocast off: unchanged
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert emb(ids).dtype == torch.bfloat16
            hidden = model(input_ids=ids).last_hidden_state
            assert hidden.dtype == torch.bfloat16  # the residual stream stayed bf16 all the way up
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert emb(ids).dtype == torch.float32  # hooks removed
        assert model(input_ids=ids).last_hidden_state.dtype == torch.float32
    assert emb.weight.dtype == torch.float32


def test_loaded_encoder_skips_its_pooler_but_keeps_its_weights(tiny_bert):
    enc = Encoder.load(str(tiny_bert))
    ids = torch.randint(3, enc.config.vocab_size, (2, 7))
    out = enc.model(input_ids=ids, attention_mask=torch.ones_like(ids))
    assert out.pooler_output is None
    reference = AutoModel.from_pretrained(tiny_bert)
    full = reference(input_ids=ids, attention_mask=torch.ones_like(ids))
    assert full.pooler_output is not None
    torch.testing.assert_close(out.last_hidden_state, full.last_hidden_state)
    assert any(k.startswith("pooler.") for k in enc.model.state_dict())


def test_pre_norm_networks_keep_an_fp32_stream(tiny_gpt2):
    model = AutoModel.from_pretrained(tiny_gpt2)
    ids = torch.randint(3, model.config.vocab_size, (2, 7))
    with embeddings_in_autocast_dtype(model, "cpu"), torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.get_input_embeddings()(ids).dtype == torch.float32
