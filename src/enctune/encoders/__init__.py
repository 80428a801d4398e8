"""Encoders: resolve a name, load tokenizer + base model, pool, fingerprint."""

from .encoder import Encoder, Tokenized
from .pooling import POOLINGS
from .resolve import default_encoder_path, fingerprint, resolve_encoder

__all__ = ["Encoder", "POOLINGS", "Tokenized", "default_encoder_path", "fingerprint", "resolve_encoder"]
