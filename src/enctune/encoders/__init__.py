"""Encoders: resolve a name, load tokenizer + base model, pool, fingerprint, cache features.

``tokens`` and ``resolve`` import without torch (tasks and the ONNX path use them); the network
code (``encoder``, ``pooling``, ``cache``) is imported when first named here, so that importing
``enctune.encoders.tokens`` does not pull torch in (~2 s of start-up, ARCHITECTURE.md).
"""

from importlib import import_module

_LAZY = {"Encoder": "encoder", "POOLINGS": "pooling", "Tokenized": "tokens", "default_encoder_path": "resolve",
         "fingerprint": "resolve", "resolve_encoder": "resolve"}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
