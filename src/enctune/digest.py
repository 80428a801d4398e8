"""The SHA-256 of a file's contents, read in blocks (a model's weights, an index's graph)."""

from __future__ import annotations

import hashlib
import os


def file_sha256(path: str | os.PathLike, block: int = 1 << 22) -> str:
    """Hex SHA-256 of the bytes of ``path``, read ``block`` bytes at a time (memory stays flat for any size)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            h.update(chunk)
    return h.hexdigest()
