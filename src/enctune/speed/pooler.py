"""The BERT-family pooler not run (switch ``no_pooler``).

``BertModel`` computes a dense + tanh over the first token on every call (0.7 ms of each training
forward of the default encoder); enctune pools the hidden states itself and never reads
``pooler_output``. A Hugging Face classifier folder, which reads it, is not loaded through here.
The pooler's weights stay, so a saved encoder is the source's network.
"""

from __future__ import annotations

from torch import nn

from . import enabled


def _no_output(*args, **kwargs) -> None:
    return None


def without_pooler(model: nn.Module) -> nn.Module:
    """``model`` with its pooler's forward replaced by one that returns None (when it has a pooler and the
    switch is on)."""
    pooler = getattr(model, "pooler", None)
    if isinstance(pooler, nn.Module) and enabled("no_pooler"):
        pooler.forward = _no_output
    return model
