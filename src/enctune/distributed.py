"""Many processes through Accelerate: who am I, my share of a batch, and gathering results.

enctune never starts processes itself: ``torchrun`` or ``accelerate launch`` do, and set
``WORLD_SIZE``/``RANK``. ``init()`` then joins the process group through Accelerate
(NCCL on GPUs, gloo on CPUs) and silences every process but the main one.

The sampler yields *global* batches (the ``--batch-size`` the user asked for); each process
takes every ``world``-th row of each (``shard``), so the optimizer step, learning-rate
schedule and early stopping are those of one process with the same global batch. Inference
over a file shards rows the same way and ``gather_rows`` puts the results back in input
order, each row once.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch

from . import progress


def launched() -> bool:
    """Whether a launcher (torchrun, accelerate launch) started more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def state():
    """Accelerate's process state (creates the process group on first use under a launcher)."""
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def init() -> tuple[int, int]:
    """(rank, world); joins the process group when launched and quiets every non-main process."""
    if not launched():
        return 0, 1


    s = state()
    if not s.is_main_process:
        progress.set_quiet(True)
    return s.process_index, s.num_processes


def rank_world() -> tuple[int, int]:
    if not launched():
        return 0, 1
    s = state()
    return s.process_index, s.num_processes


def is_main() -> bool:
    return rank_world()[0] == 0


def barrier() -> None:
    if launched():
        state().wait_for_everyone()


def finish() -> None:
    """Leave the process group cleanly once the work is done: every process waits for the others, then
    the group is destroyed. A process that exits with the group still alive leaves gloo's threads to the
    interpreter's teardown, which can abort it (SIGABRT) after its work is complete."""
    if launched() and torch.distributed.is_available() and torch.distributed.is_initialized():
        try:
            state().wait_for_everyone()
        finally:
            torch.distributed.destroy_process_group()


def shard(idx, rank: int, world: int) -> list:
    """This process's rows of a global batch: every ``world``-th row, starting at ``rank``.

    Strided rows keep each share's lengths alike in a length-sorted batch. A batch with fewer
    rows than processes gives the short processes a row again (each process must step).
    """
    idx = list(idx)
    if world == 1:
        return idx
    mine = idx[rank::world]
    return mine if mine else [idx[rank % len(idx)]]


def gather_rows(n: int, compute: Callable[[np.ndarray], np.ndarray | list]) -> np.ndarray | list:
    """``compute(idx)`` (rows for the indices ``idx``) over 0..n-1, split across processes.

    Every process gets the full result, each row computed once, in input order: an (n, ...)
    array when ``compute`` returns arrays, a list of n per-row objects when it returns lists
    (token-level outputs, one (T_i, C) array per row).
    """
    rank, world = rank_world()
    if world == 1 or n < world:  # too few rows to share: every process computes them all
        return compute(np.arange(n))
    from accelerate.utils import gather_object

    mine = np.arange(rank, n, world)
    return assemble(n, gather_object([(mine, compute(mine))]))


def assemble(n: int, pieces: list[tuple[np.ndarray, np.ndarray | list]]) -> np.ndarray | list:
    """Rows from (indices, rows) pieces put back in input order."""
    if isinstance(pieces[0][1], list):
        rows: list = [None] * n
        for idx, part in pieces:
            for i, row in zip(idx, part, strict=True):
                rows[i] = row
        return rows
    first = pieces[0][1]
    out = np.zeros((n, *first.shape[1:]), dtype=first.dtype)
    for idx, part in pieces:
        out[idx] = part
    return out


def gather_list(items: list) -> list:
    """Per-process Python objects gathered on every process, in rank order."""
    if not launched():
        return [items]
    from accelerate.utils import gather_object

    return gather_object([items])


def sum_int(x: int) -> int:
    """The sum of an integer over every process."""
    return sum(int(v) for v in gather_list(int(x)))
