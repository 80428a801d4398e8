"""A student encoder cut from a bigger one: which blocks stay, and that the cut network is the original's."""

import pytest
import torch
from transformers import AutoModel, BertConfig, BertModel, GPT2Config, GPT2Model

from enctune.encoders.shrink import keep_layers, layers_to_keep
from enctune.errors import UserError


@pytest.mark.parametrize(("n", "k", "kept"), [(6, 3, [1, 3, 5]), (6, 2, [2, 5]), (12, 4, [2, 5, 8, 11]),
                                              (6, 4, [1, 2, 3, 5]), (2, 1, [1])])
def test_kept_blocks_are_evenly_spaced_and_end_at_the_top(n, k, kept):
    assert layers_to_keep(n, k) == kept


@pytest.mark.parametrize("k", [0, 6, 7])
def test_a_student_keeps_at_least_one_block_and_fewer_than_all(k):
    with pytest.raises(UserError, match="between 1 and 5"):
        layers_to_keep(6, k)


def _bert(layers=4):
    torch.manual_seed(0)
    return BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=layers, num_attention_heads=2,
                                intermediate_size=32, max_position_embeddings=32, hidden_dropout_prob=0.0,
                                attention_probs_dropout_prob=0.0)).eval()


def test_the_cut_network_runs_the_kept_blocks_of_the_original_and_reloads(tmp_path):
    net = _bert(4)
    # the reference: a 2-block network holding the original's embeddings and its blocks 1 and 3
    ref = _bert(2)
    state = {k: v for k, v in net.state_dict().items() if ".layer." not in k}
    for new, old in ((0, 1), (1, 3)):
        state.update({k.replace(f".layer.{old}.", f".layer.{new}."): v for k, v in net.state_dict().items()
                      if f".layer.{old}." in k})
    ref.load_state_dict(state)
    ids = torch.randint(1, 50, (2, 7))
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    keep_layers(net, [1, 3])
    assert net.config.num_hidden_layers == 2 and len(net.encoder.layer) == 2
    with torch.no_grad():
        out = net(input_ids=ids, attention_mask=mask).last_hidden_state
        assert torch.allclose(out, ref(input_ids=ids, attention_mask=mask).last_hidden_state, atol=1e-6)
    net.save_pretrained(tmp_path)
    again = AutoModel.from_pretrained(tmp_path).eval()
    assert again.config.num_hidden_layers == 2
    with torch.no_grad():
        assert torch.allclose(again(input_ids=ids, attention_mask=mask).last_hidden_state, out, atol=1e-6)


def test_a_decoder_style_block_list_is_found_too():
    torch.manual_seed(0)
    net = GPT2Model(GPT2Config(vocab_size=50, n_embd=16, n_layer=4, n_head=2, n_positions=32)).eval()
    top = net.h[3]
    keep_layers(net, [0, 3])
    assert len(net.h) == 2 and net.h[1] is top and net.config.n_layer == 2
    assert net(input_ids=torch.randint(1, 50, (1, 5))).last_hidden_state.shape == (1, 5, 16)
