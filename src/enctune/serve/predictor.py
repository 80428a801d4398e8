"""Prediction from a model folder: the object ``enctune.load`` returns.

The same object serves Python, the command line and (later) HTTP. Batches are sorted by
length, run under inference mode, and returned in input order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.dataset import Examples
from ..encoders import Encoder
from ..errors import UserError
from ..model import batched_logits
from ..model_folder import find_model_folder, read_head_state, read_meta
from ..tasks import TASKS


class Predictor:
    def __init__(self, encoder: Encoder, head: torch.nn.Module, task, meta: dict, precision: str = "fp32"):
        self.encoder = encoder
        self.head = head
        self.task = task
        self.meta = meta
        self.precision = precision
        self.encoder.eval()
        self.head.eval()

    @classmethod
    def load(cls, path: str | Path, precision: str = "fp32") -> Predictor:
        from ..training.precision import resolve_precision

        folder = find_model_folder(path)
        meta = read_meta(folder)
        if meta["task"] not in TASKS:
            raise UserError(f"{folder}: task '{meta['task']}' is not known to this version of enctune.")
        enc_dir = folder / "encoder"
        if not (enc_dir / "config.json").is_file():
            raise UserError(f"{enc_dir / 'config.json'}: missing; the model folder is damaged.")
        weights = list(enc_dir.glob("*.safetensors"))
        if not weights:
            raise UserError(f"{enc_dir}: no model.safetensors; the model folder is damaged (only safetensors "
                            "weights are read).")
        encoder = Encoder.load(str(enc_dir), pooling=meta["pooling"], max_length=meta["max_length"],
                               layer=meta.get("layer", -1))
        task = TASKS[meta["task"]](meta["labels"], meta.get("label_type", "str"))
        head = task.build_head(encoder.hidden_size, meta.get("dropout", 0.1))
        state = read_head_state(folder)
        try:
            head.load_state_dict(state)
        except RuntimeError as e:
            raise UserError(f"{folder / 'head.safetensors'}: does not fit the head in enctune.json ({e}).") from None
        return cls(encoder, head, task, meta, resolve_precision(precision))

    @property
    def labels(self) -> list[str]:
        return self.task.labels

    def _check_pairs(self, texts, pairs):
        if isinstance(texts, str):
            texts = [texts]
        if isinstance(pairs, str):
            pairs = [pairs]
        needs_pair = bool(self.meta.get("columns", {}).get("pair"))
        if needs_pair and pairs is None:
            raise UserError("this model was trained on text pairs: give text_pairs as well.")
        if pairs is not None and len(pairs) != len(texts):
            raise UserError(f"{len(texts)} texts but {len(pairs)} text pairs; expected one pair per text.")
        return list(texts), (list(pairs) if pairs is not None else None)

    def logits(self, texts, pairs=None, batch_size: int = 64, progress=None) -> np.ndarray:
        texts, pairs = self._check_pairs(texts, pairs)
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        tokens = self.encoder.tokenize(texts, pairs)
        return batched_logits(self.encoder, self.head, tokens, batch_size, self.precision, progress)

    def predict(self, texts, pairs=None, batch_size: int = 64) -> list[dict]:
        """One dict per text: ``{"label": ..., "probabilities": {label: p}}``."""
        return self.task.decode(self.logits(texts, pairs, batch_size))

    def predict_proba(self, texts, pairs=None, batch_size: int = 64) -> np.ndarray:
        from ..tasks.classify import softmax

        return softmax(self.logits(texts, pairs, batch_size))

    def evaluate(self, examples: Examples, batch_size: int = 64, progress=None) -> dict:
        logits = self.logits(examples.texts, examples.pairs, batch_size, progress)
        return self.task.metrics(logits, self.task.encode_labels(examples.labels).numpy())

    def embed(self, texts, pairs=None, layer: int | None = None, pooling: str | None = None,
              batch_size: int = 64) -> np.ndarray:
        """Pooled sequence representations from this model's (trained) encoder."""
        texts, pairs = self._check_pairs(texts, pairs) if pairs is not None else (list(texts), None)
        return embed(self.encoder, texts, pairs, layer, pooling, batch_size, self.precision)


def embed(encoder: Encoder, texts: list[str], pairs: list[str] | None = None, layer: int | None = None,
          pooling: str | None = None, batch_size: int = 64, precision: str = "fp32", progress=None) -> np.ndarray:
    from ..encoders.pooling import POOLINGS

    layer = encoder.layer if layer is None else layer
    pooling = pooling or encoder.pooling
    if pooling not in POOLINGS:
        raise UserError(f"--pooling '{pooling}': unknown. Expected one of: {', '.join(POOLINGS)}.")
    if not -1 <= layer <= encoder.num_layers:
        raise UserError(f"--layer {layer}: this encoder has layers 0 (embeddings) to {encoder.num_layers}; "
                        "-1 means the last.")
    if not texts:
        return np.zeros((0, encoder.hidden_size), dtype=np.float32)
    tokens = encoder.tokenize(texts, pairs)
    out = encoder.encode(tokens, layers=[layer], poolings=[pooling], batch_size=batch_size, precision=precision,
                         progress=progress)
    return out[(layer, pooling)]
