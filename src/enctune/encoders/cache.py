"""On-disk cache of pooled features from a frozen encoder.

A frozen encoder is run once per text set: the pooled vectors of every requested layer
and pooling are stored under ``$ENCTUNE_CACHE`` (default ``~/.cache/enctune``), keyed by
the model fingerprint, pooling, layer, max length and a hash of the texts. Entries are
written to a temporary file and renamed; an entry that does not load or has the wrong
shape is treated as missing and rebuilt.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..atomic import atomic_write

if TYPE_CHECKING:
    from .encoder import Encoder
    from .tokens import Tokenized


def cache_root() -> Path:
    return Path(os.environ.get("ENCTUNE_CACHE") or Path.home() / ".cache" / "enctune")


def texts_hash(texts: list[str], pairs: list[str] | None) -> str:
    h = hashlib.sha256()
    for i, t in enumerate(texts):
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
        if pairs is not None:
            h.update(pairs[i].encode("utf-8", "surrogatepass"))
        h.update(b"\x01")
    return h.hexdigest()


def entry_key(fingerprint: str, pooling: str, layer: int, max_length: int, text_hash: str) -> str:
    raw = f"{fingerprint}|{pooling}|{layer}|{max_length}|{text_hash}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _load(path: Path, n: int, dim: int) -> np.ndarray | None:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if arr.shape != (n, dim) or arr.dtype != np.float32:
        return None
    return arr


def _save(path: Path, arr: np.ndarray) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.save would append .npy to a bare name
            np.save(f, arr, allow_pickle=False)

    atomic_write(path, write)


def cached_features(encoder: Encoder, texts: list[str], pairs: list[str] | None, tokens: Tokenized,
                    layers: list[int], poolings: list[str], batch_size: int = 256, precision: str = "fp32",
                    progress=None, root: Path | None = None) -> tuple[dict[tuple[int, str], np.ndarray], bool]:
    """Features per (layer, pooling); returns them and whether every one came from the cache."""
    root = (root or cache_root()) / "features"
    th = texts_hash(texts, pairs)
    fp = encoder.fingerprint()
    # bf16 features differ from fp32 ones: keep them apart in the key.
    tag = "" if precision == "fp32" else f"-{precision}"
    paths = {(ly, p): root / f"{entry_key(fp, p + tag, ly, encoder.max_length, th)}.npy"
             for ly in layers for p in poolings}
    found = {k: _load(path, len(texts), encoder.hidden_size) for k, path in paths.items()}
    if all(v is not None for v in found.values()):
        return found, True
    from ..distributed import gather_rows  # lazy: torch (~2 s); a cache hit never needs it

    keys = list(paths)

    def run(idx):  # under a launcher each process encodes its share of the rows
        part = tokens if len(idx) == len(tokens) else tokens.subset(idx)
        out = encoder.encode(part, layers=layers, poolings=poolings, batch_size=batch_size, precision=precision,
                             progress=progress)
        return np.stack([out[k] for k in keys], 1)  # (n, K, H)

    stacked = gather_rows(len(tokens), run)
    computed = {k: np.ascontiguousarray(stacked[:, i]) for i, k in enumerate(keys)}
    for k, arr in computed.items():
        try:
            _save(paths[k], arr)
        except OSError:  # a read-only or full cache disk must not fail the run
            pass
    return computed, False
