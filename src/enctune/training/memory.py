"""Memory guard: refuse, before training starts, a run that clearly cannot fit.

The estimate is a lower bound in fp32 bytes, so that only runs that clearly exceed the
memory available are refused (a run near the limit is let through):

    weights                 4 N                       (N parameters)
    gradients + AdamW       12 T                      (T trainable: gradient, two moments)
    activations, per pass   4 B W L (16 H + 2 A W)    (B rows of W padded tokens, L layers of
                                                       width H with A attention heads)

With gradient checkpointing only each layer's input is kept (4 B W L H) plus one layer's
activations. Available memory: free GPU memory on CUDA, else ``MemAvailable`` from
/proc/meminfo (``psutil`` where that file does not exist); unknown means no check.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError


@dataclass
class Shape:
    total_params: int
    trainable_params: int
    hidden: int
    layers: int
    heads: int


def estimate_bytes(shape: Shape, rows: int, width: int, gradient_checkpointing: bool = False) -> int:
    per_layer = 4 * rows * width * (16 * shape.hidden + 2 * shape.heads * width)
    layers = max(shape.layers, 1)
    acts = (4 * rows * width * shape.hidden * layers + per_layer) if gradient_checkpointing else per_layer * layers
    return 4 * shape.total_params + 12 * shape.trainable_params + acts


def available_bytes(device: str = "cpu") -> int | None:
    if device == "cuda":
        import torch

        return int(torch.cuda.mem_get_info()[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        return None


def check_fits(shape: Shape, rows: int, width: int, device: str, gradient_checkpointing: bool,
               max_tokens_per_batch: int | None) -> None:
    """UserError with advice when the estimate exceeds the memory available."""
    if max_tokens_per_batch:  # a pass holds at most this many padded tokens (at least one row)
        rows = max(1, min(rows, max_tokens_per_batch // max(width, 1)))
    need = estimate_bytes(shape, rows, width, gradient_checkpointing)
    have = available_bytes(device)
    if have is None or need <= have:
        return
    advice = ["a smaller --batch-size", "--max-tokens-per-batch (e.g. 2048)", "a smaller --max-length"]
    if not gradient_checkpointing:
        advice.append("--gradient-checkpointing")
    advice.append("--strategy probe (the encoder stays frozen)")
    raise UserError(f"this run needs at least {need / 2**30:.1f} GiB ({rows} rows x {width} tokens per pass, "
                    f"{shape.trainable_params:,} trainable parameters) but {device} has {have / 2**30:.1f} GiB "
                    f"available; try " + ", ".join(advice) + ".")
