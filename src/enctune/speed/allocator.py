"""Keep the large temporary tensors of a forward pass in the heap (glibc malloc).

By default glibc serves each allocation above its mmap threshold (128 KiB, rising as blocks
are freed, to at most 32 MiB) with a fresh ``mmap`` and gives it back with ``munmap`` when it
is freed; it also trims the heap top back to the kernel past 128 KiB free. A transformer pass
allocates and frees activations of several MiB in every layer, so each pass pays page faults
for memory it had a moment before. On the default encoder that was about a quarter of the
first bf16 pass over the SST-2 test sentences (2.0 s against 1.6 s with the settings below).

``tune()`` sets both thresholds once per process: allocations up to 32 MiB come from the heap,
and up to 256 MiB of freed heap stays with the process for the next pass. It does nothing off
Linux/glibc, when the user has set ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_``
themselves, when another allocator is preloaded (jemalloc, tcmalloc), or with the ``malloc``
switch off (``ENCTUNE_DISABLE=malloc``, or ``ENCTUNE_MALLOC_TUNING=0``).
"""

from __future__ import annotations

import ctypes
import os
import sys

from . import enabled

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 256 << 20

_state: dict[str, bool] = {}


def tune() -> bool:
    """Apply the thresholds (once); whether they are in force."""
    if "tuned" not in _state:
        _state["tuned"] = _apply()
    return _state["tuned"]


def _apply() -> bool:
    env = os.environ
    if not enabled("malloc") or not sys.platform.startswith("linux"):
        return False
    if "MALLOC_MMAP_THRESHOLD_" in env or "MALLOC_TRIM_THRESHOLD_" in env:
        return False
    if any(name in env.get("LD_PRELOAD", "") for name in ("jemalloc", "tcmalloc", "mimalloc")):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # glibc only: musl has no mallopt thresholds  # noqa: B018
    except (OSError, AttributeError):
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD,
                                                                                       TRIM_THRESHOLD))
