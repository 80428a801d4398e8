"""A network built on first use (switch ``lazy_network``).

Loading an encoder's network (its modeling code and weights) is most of a warm probe's load time,
and a probe whose features are all in the feature cache never runs it: it needs only the tokenizer
and the config. ``LazyNetwork`` holds a ``build`` function instead of the network and builds it the
first time anything reads ``model`` or walks the weights (``parameters()``, ``state_dict()``,
``.to()``...), so code that uses the network never sees the difference. With the switch off the
network is built at once.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from . import enabled


class LazyNetwork(nn.Module):
    """A module whose ``model`` (the network) is built by ``build()`` on first use."""

    def defer(self, build: Callable[[], nn.Module] | None, model: nn.Module | None) -> None:
        """Hold ``model``, or ``build`` to make it on first use (at once when the switch is off)."""
        if build is not None and not enabled("lazy_network"):
            model, build = build(), None
        if build is None:
            self.model = model
        else:
            self._build = build
            self._freeze_on_build = False

    @property
    def loaded(self) -> bool:
        """Whether the network exists (always, unless built lazily and not used yet)."""
        return "_build" not in self.__dict__

    def _materialize(self) -> nn.Module:
        build = self.__dict__.pop("_build")
        # loading may draw from torch's generator (weights the file lacks are initialised at random): that must
        # not shift what the run draws after it (a head's weights, dropout), or a run would train differently
        # depending on when its network happened to be built. Built outside inference mode even when first used
        # inside it (an encoding pass before training): weights made there could never be trained
        with torch.random.fork_rng(devices=[]), torch.inference_mode(False):
            model = build()
        model.train(self.training)
        if self.__dict__.pop("_freeze_on_build", False):
            model.requires_grad_(False)
        self.model = model
        return model

    def built(self) -> None:
        if not self.loaded:
            self._materialize()

    def __getattr__(self, name: str):
        if name == "model" and "_build" in self.__dict__:
            return self._materialize()
        return super().__getattr__(name)

    # whatever walks the weights builds the network first
    def named_modules(self, *args, **kwargs):  # parameters(), modules(), buffers() and the like
        self.built()
        return super().named_modules(*args, **kwargs)

    def _apply(self, *args, **kwargs):  # .to(), .float(), .bfloat16()
        self.built()
        return super()._apply(*args, **kwargs)

    def state_dict(self, *args, **kwargs):
        self.built()
        return super().state_dict(*args, **kwargs)

    def load_state_dict(self, *args, **kwargs):
        self.built()
        return super().load_state_dict(*args, **kwargs)

    def freeze(self) -> None:
        """No gradients for the network's weights (now, or when it is built)."""
        if self.loaded:
            self.model.requires_grad_(False)
        else:
            self._freeze_on_build = True
