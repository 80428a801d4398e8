"""A smaller encoder made from a bigger one by keeping some of its transformer blocks.

A student that starts from its teacher's own blocks starts close to the teacher's function (its
embeddings and the kept blocks are the teacher's), so distillation has far less to learn than from
a random start. ``layers_to_keep`` spaces the kept blocks evenly and always keeps the top one: the
top block writes the vectors the head was trained on (for 6 -> 3 blocks: 1, 3, 5).
"""

from __future__ import annotations

from ..errors import UserError

_BLOCK_LISTS = ("layer", "layers", "h", "block", "blocks")  # what transformers names an encoder's block list


def layers_to_keep(n_layers: int, n_keep: int) -> list[int]:
    """Indices (0-based) of ``n_keep`` of ``n_layers`` blocks, evenly spaced, the top one always kept.

    Raises:
        UserError: when ``n_keep`` is not between 1 and ``n_layers`` - 1.
    """
    if not 1 <= n_keep < n_layers:
        raise UserError(f"--layers {n_keep}: the teacher's encoder has {n_layers} layers; a student keeps between "
                        f"1 and {n_layers - 1} of them.")
    return [round((i + 1) * n_layers / n_keep) - 1 for i in range(n_keep)]


def block_list(network):
    """The network's ``nn.ModuleList`` of transformer blocks (as many as ``config.num_hidden_layers``)."""
    from torch import nn  # lazy: torch (~2 s)

    n = int(getattr(network.config, "num_hidden_layers", 0) or 0)
    for name, module in network.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n and name.rsplit(".", 1)[-1] in _BLOCK_LISTS:
            return name, module
    raise UserError(f"{type(network).__name__}: no list of {n} transformer blocks found to keep layers from; pass "
                    "a smaller encoder folder with --student instead.")


def keep_layers(network, keep: list[int]) -> None:
    """Cut ``network`` (in place) down to the blocks ``keep``, in order, and say so in its config, so that
    the saved folder loads as an encoder of ``len(keep)`` layers."""
    from torch import nn  # lazy: torch (~2 s)

    name, blocks = block_list(network)
    parent = network.get_submodule(name.rsplit(".", 1)[0]) if "." in name else network
    kept = nn.ModuleList([blocks[i] for i in keep])
    for j, block in enumerate(kept):  # blocks that know their own index (attention caches) are renumbered
        for m in block.modules():
            if isinstance(getattr(m, "layer_idx", None), int):
                m.layer_idx = j
    setattr(parent, name.rsplit(".", 1)[-1], kept)
    network.config.num_hidden_layers = len(keep)
    layer_types = getattr(network.config, "layer_types", None)
    if isinstance(layer_types, list) and len(layer_types) == len(blocks):
        network.config.layer_types = [layer_types[i] for i in keep]
