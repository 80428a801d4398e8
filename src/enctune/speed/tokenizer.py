"""Token ids straight from a fast tokenizer's Rust backend (switch ``tokenizer_backend``).

``tokenizer(texts, truncation=True, max_length=L)`` builds per-row Python objects (an
``Encoding`` wrapper, dicts of lists) that enctune never reads; the backend's ``encode_batch``
with the same truncation gives the same ids and type ids for about two thirds of the time: ~0.2 s
of a warm SST-2 probe, which then takes ~1.6 s. The ids are checked equal to the stock call's in
``tests/speed/``.
"""

from __future__ import annotations

from . import enabled


def backend_ids(tokenizer, texts: list[str], pairs: list[str] | None,
                max_length: int) -> tuple[list | None, list | None]:
    """(ids, type ids) per text with the truncation ``tokenizer(..., truncation=True, max_length=max_length)``
    sets; (None, None) for a slow tokenizer or with the switch off (the caller then calls the tokenizer)."""
    backend = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
    if backend is None or not enabled("tokenizer_backend"):
        return None, None
    target = {"max_length": max_length, "stride": 0, "strategy": "longest_first",
              "direction": tokenizer.truncation_side}
    if backend.truncation != target:
        backend.enable_truncation(**target)
    if backend.padding is not None:
        backend.no_padding()
    encodings = backend.encode_batch(list(zip(texts, pairs, strict=True)) if pairs is not None else list(texts),
                                     add_special_tokens=True)
    return [e.ids for e in encodings], [e.type_ids for e in encodings]
