"""Numeric precision: ``auto`` picks bf16 only where the hardware computes it natively.

On a CPU without AVX-512 BF16 or AMX, bf16 matrix products are emulated and run many
times slower than fp32, so ``auto`` keeps fp32 there. Master weights stay fp32 always;
bf16 is applied through autocast. (What makes bf16 faster still, a bf16 residual stream and
a bf16 copy of the weights for inference, is in ``speed.bf16``.)
"""

from __future__ import annotations

import contextlib
import os
from functools import lru_cache

import torch

from .errors import UserError

PRECISIONS = ("auto", "fp32", "bf16")
PRECISION_ENV = "ENCTUNE_PRECISION"  # what ``auto`` resolves to, when set


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
