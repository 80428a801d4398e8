"""Numeric precision: ``auto`` picks bf16 only where the hardware computes it natively.

On a CPU without AVX-512 BF16 or AMX, bf16 matrix products are emulated and run many
times slower than fp32, so ``auto`` keeps fp32 there. Master weights stay fp32 always;
bf16 is applied through autocast.

Under CPU autocast a layer norm keeps its input's dtype, so a transformer's residual stream
stays in whatever dtype the embeddings hand it. Embedding lookups are not autocast ops: with
fp32 tables the stream stays fp32 all the way up, and every linear layer casts its input to
bf16 again (forward and backward: ~45 activation copies per step of a 6-layer encoder).
``embeddings_in_autocast_dtype`` gives embedding lookups the autocast dtype, as a linear layer
would have, so the stream is bf16 from the start. Only in post-norm encoders (BERT and its
kin), where a layer norm follows every residual add and the stream is renormalised at each
sub-layer. A pre-norm network (GPT-2, Llama) adds into one stream through all its layers;
there bf16 rounding accumulates (a tiny GPT-2 regression fell from 0.66 to 0.47 test Spearman),
so its stream stays fp32.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from functools import lru_cache

import torch

from ..errors import UserError

PRECISIONS = ("auto", "fp32", "bf16")
PRECISION_ENV = "ENCTUNE_PRECISION"  # what ``auto`` resolves to, when set
# encoders whose every residual add is followed by a layer norm (see the module docstring)
POST_NORM_TYPES = frozenset({"bert", "roberta", "xlm-roberta", "camembert", "electra", "distilbert", "mpnet"})


@lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_precision(precision: str, device: str = "cpu") -> str:
    """``fp32``/``bf16`` as asked; ``auto``: the environment's ``ENCTUNE_PRECISION`` (fp32 or bf16) when set,
    else bf16 where the hardware computes it natively, else fp32. The variable lets a whole test suite or a
    batch of runs take one path on any machine (the two CPU kinds enctune runs on round bf16 differently)."""
    if precision not in PRECISIONS:
        raise UserError(f"--precision '{precision}': expected one of {', '.join(PRECISIONS)}.")
    if precision != "auto":
        return precision
    forced = os.environ.get(PRECISION_ENV, "").strip().lower()
    if forced:
        if forced not in ("fp32", "bf16"):
            raise UserError(f"{PRECISION_ENV}={forced!r}: expected fp32 or bf16 (or unset it).")
        return forced
    if device == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_bf16() else "fp32"


def autocast(device_type: str, precision: str):
    if precision == "bf16":
        return torch.autocast(device_type=device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def bf16_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``module`` with its weights in bf16, made once, for inference. Autocast alone casts every
    weight again on every call; on a 2-core Xeon the copy runs the default encoder 1.25x faster."""
    import copy

    return copy.deepcopy(module).to(torch.bfloat16)


@contextlib.contextmanager
def embeddings_in_autocast_dtype(model: torch.nn.Module, device_type: str) -> Iterator[None]:
    """Within the block, every ``nn.Embedding`` of the post-norm encoders in ``model`` returns the autocast
    dtype while autocast is on (CPU only: CUDA's autocast runs layer norms in fp32, so the stream is fp32
    there whatever the embeddings give). The tables themselves stay fp32, and their gradients are fp32."""
    if device_type != "cpu":
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
