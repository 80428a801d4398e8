"""allocator.tune(): big temporary buffers come from the heap, not from a fresh mmap each time."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Allocates 8 MiB with malloc and reports how many bytes glibc holds in mmapped blocks meanwhile.
PROBE = """
import ctypes, sys
from enctune.speed import allocator
tuned = allocator.tune()
libc = ctypes.CDLL("libc.so.6")
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
before = libc.mallinfo2().hblkhd
p = libc.malloc(8 << 20)
during = libc.mallinfo2().hblkhd
libc.free(ctypes.c_void_p(p))
print(tuned, during - before)
"""


def _run(env_extra: dict) -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | env_extra
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True)
    tuned, mmapped = out.stdout.split()
    return tuned, int(mmapped)


def _glibc() -> bool:
    try:
        return sys.platform.startswith("linux") and "glibc" in (os.confstr("CS_GNU_LIBC_VERSION") or "")
    except (ValueError, OSError):
        return False


@pytest.mark.skipif(not _glibc(), reason="the thresholds are glibc malloc's; elsewhere tune() does nothing")
def test_tuned_allocations_stay_in_the_heap_and_the_user_can_opt_out():
    assert _run({}) == ("True", 0)  # 8 MiB from the heap: no new mmapped block
    tuned, mmapped = _run({"ENCTUNE_MALLOC_TUNING": "0"})
    assert tuned == "False" and mmapped >= 8 << 20  # glibc's default: a fresh mmap
    assert _run({"MALLOC_MMAP_THRESHOLD_": "131072"})[0] == "False"  # the user's own setting wins
