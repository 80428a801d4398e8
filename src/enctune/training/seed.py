"""One seed for everything a run draws at random."""

from __future__ import annotations

import numpy as np
import torch


def seed_all(seed: int) -> None:
    """Set torch's and numpy's global generators to ``seed``: a head's first weights, dropout masks and
    the order of batches then follow from it, so that two runs with one seed train alike, whatever ran
    before them in the process (a repeat, a rung of the ``--budget`` ladder, a test)."""
    torch.manual_seed(seed)
    np.random.seed(seed)
