"""Length-bucketed batches: shuffle, then sort by length inside large pools.

Real text is short and ragged; padding every row to a fixed length wastes most of the
work. Sorting inside pools of ``pool_factor * batch_size`` examples keeps batches of
similar lengths (little padding) while the order across batches stays random.
"""

from __future__ import annotations

import numpy as np
from torch.utils.data import Sampler


class LengthBucketSampler(Sampler[list[int]]):
    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int, shuffle: bool = True,
                 pool_factor: int = 50):
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.pool = batch_size * pool_factor
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        n = len(self.lengths)
        if not self.shuffle:
            order = np.argsort(-self.lengths, kind="stable")
            return [order[i:i + self.batch_size].tolist() for i in range(0, n, self.batch_size)]
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(n)
        out = []
        for p in range(0, n, self.pool):
            pool = order[p:p + self.pool]
            pool = pool[np.argsort(-self.lengths[pool], kind="stable")]
            out += [pool[i:i + self.batch_size].tolist() for i in range(0, len(pool), self.batch_size)]
        rng.shuffle(out)  # batches of similar length, in random order
        return out

    def __iter__(self):
        return iter(self.batches())

    def __len__(self) -> int:
        # pools are whole multiples of the batch size, so only the very last batch can be short
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size


class ShuffledBatches(Sampler[list[int]]):
    """Batches of a fresh permutation each epoch, fixed by (seed, epoch): resuming mid-epoch is exact."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self, rng: np.random.Generator) -> np.ndarray:
        return rng.permutation(self.n)

    def __iter__(self):
        order = self.order(np.random.default_rng([self.seed, self.epoch]))
        return iter([order[i:i + self.batch_size].tolist() for i in range(0, self.n, self.batch_size)])

    def __len__(self) -> int:
        return (self.n + self.batch_size - 1) // self.batch_size


class PassBatches(ShuffledBatches):
    """``passes`` shuffled passes over n rows, laid end to end and cut into batches: a row comes back only in
    the next pass, so a batch repeats a row only where two passes meet. Fixed by (seed, epoch)."""

    def __init__(self, n: int, passes: int, batch_size: int, seed: int):
        super().__init__(n * passes, batch_size, seed)
        self.rows, self.passes = n, passes

    def order(self, rng: np.random.Generator) -> np.ndarray:
        return np.concatenate([rng.permutation(self.rows) for _ in range(self.passes)])


def split_by_tokens(batch: dict, max_tokens: int | None) -> list[dict]:
    """A collated batch cut into row slices of at most ``max_tokens`` padded tokens each.

    Each slice is trimmed to its own longest row (the columns where any of its rows has a real
    token; works for left and right padding). Batches without an attention mask, or within the
    budget, come back whole. A single row longer than the budget stays one slice.
    """
    mask = batch.get("attention_mask")
    if not max_tokens or mask is None:
        return [batch]
    # texts encoded apart (a pair's second texts, a hard negative) are padded on their own: each has its mask
    masks = {s: batch[f"attention_mask{s}"] for s in ("", "_b", "_c") if f"attention_mask{s}" in batch}
    if sum(m.numel() for m in masks.values()) <= max_tokens:
        return [batch]
    lengths = sum(m.sum(1) for m in masks.values())
    out, start, n = [], 0, mask.shape[0]
    while start < n:
        stop = start + 1
        width = int(lengths[start])
        while stop < n and max(width, int(lengths[stop])) * (stop + 1 - start) <= max_tokens:
            width = max(width, int(lengths[stop]))
            stop += 1
        keep = {s: m[start:stop].any(0) for s, m in masks.items()}
        piece = {}
        for k, v in batch.items():
            s = k[-2:] if k.endswith(("_b", "_c")) and k[-2:] in masks else ""
            m = masks[s]
            piece[k] = v[start:stop][:, keep[s]] if v.ndim == 2 and v.shape == m.shape else v[start:stop]
        out.append(piece)
        start = stop
    return out
