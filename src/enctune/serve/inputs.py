"""Checking prediction inputs, shared by the PyTorch and the onnxruntime predictors (no torch import)."""

from __future__ import annotations

from ..errors import UserError


def check_inputs(texts, pairs, meta: dict) -> tuple[list[str], list[str] | None]:
    """Texts (and second texts) as lists; a pair model needs one pair per text."""
    if isinstance(texts, str):
        texts = [texts]
    if isinstance(pairs, str):
        pairs = [pairs]
    if meta.get("columns", {}).get("pair") and pairs is None:
        raise UserError("this model was trained on text pairs: give text_pairs as well.")
    if pairs is not None and len(pairs) != len(texts):
        raise UserError(f"{len(texts)} texts but {len(pairs)} text pairs; expected one pair per text.")
    return list(texts), (list(pairs) if pairs is not None else None)
