"""bf16 made cheaper on a CPU: a bf16 residual stream in training, a bf16 copy of the weights for inference.

``embeddings_in_autocast_dtype`` (switch ``bf16_residual``). Under CPU autocast a layer norm keeps its
input's dtype, so a transformer's residual stream stays in whatever dtype the embeddings hand it.
Embedding lookups are not autocast ops: with fp32 tables the stream stays fp32 all the way up, and every
linear layer casts its input to bf16 again (forward and backward: ~45 activation copies per step of a
6-layer encoder). Giving embedding lookups the autocast dtype, as a linear layer would have, makes the
stream bf16 from the start: 3-19% more train examples/s on SST-2, the same test accuracy (BENCHMARKS.md).
Only in post-norm encoders (BERT and its kin), where a layer norm follows every residual add and the
stream is renormalised at each sub-layer. A pre-norm network (GPT-2, Llama) adds into one stream through
all its layers, where bf16 rounding accumulates; its stream stays fp32 (the toy GPT-2 regression that
first suggested this scored 0.66 against 0.47, a gap within that toy's seed-to-seed spread, so the
exclusion is a precaution, not a measured loss).

``bf16_copy`` (switch ``bf16_copy``): a copy of a module with its weights in bf16, made once, for
inference. Autocast alone casts every weight again on every call; on a 2-core Xeon the copy runs the
default encoder 1.25x faster. Without the switch the model runs under autocast as it is.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch

from . import enabled

# encoders whose every residual add is followed by a layer norm (see the module docstring)
POST_NORM_TYPES = frozenset({"bert", "roberta", "xlm-roberta", "camembert", "electra", "distilbert", "mpnet"})
BF16_COPY_MIN_ROWS = 256  # below this many rows, copying the weights to bf16 costs more than it saves


def bf16_copy(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` with its weights in bf16 (a copy; the original stays fp32), or ``module`` itself when the
    ``bf16_copy`` switch is off (autocast then casts on every call)."""
    if not enabled("bf16_copy"):
        return module
    return copy.deepcopy(module).to(torch.bfloat16)


@contextlib.contextmanager
def embeddings_in_autocast_dtype(model: torch.nn.Module, device_type: str) -> Iterator[None]:
    """Within the block, every ``nn.Embedding`` of the post-norm encoders in ``model`` returns the autocast
    dtype while autocast is on (CPU only: CUDA's autocast runs layer norms in fp32, so the stream is fp32
    there whatever the embeddings give). The tables themselves stay fp32, and their gradients are fp32."""
    if device_type != "cpu" or not enabled("bf16_residual"):
        yield
        return

    def cast(module, args, output):
        if torch.is_autocast_enabled("cpu") and output.is_floating_point():
            return output.to(torch.get_autocast_dtype("cpu"))
        return output

    networks = [m for m in model.modules()
                if getattr(getattr(m, "config", None), "model_type", None) in POST_NORM_TYPES]
    tables = {id(e): e for net in networks for e in net.modules() if isinstance(e, torch.nn.Embedding)}
    handles = [e.register_forward_hook(cast) for e in tables.values()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
