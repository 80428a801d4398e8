"""``load``: any model folder enctune predicts with, by what the folder holds.

- an ONNX export (``enctune-onnx.json``, written by ``enctune export``): ``OnnxPredictor``,
  onnxruntime only, torch is not imported;
- an enctune run or model folder: ``Predictor`` (PyTorch);
- a Hugging Face sequence-classification folder: ``Predictor`` too (``hf_classifier``).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ..errors import UserError
from ..model_folder import META_FILE, ONNX_MARKER


def require(modules: tuple[str, ...], what: str) -> None:
    """UserError naming the ``serve`` extra when an optional package ``what`` needs is missing."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"{what} needs {', '.join(missing)}: pip install 'enctune[serve]'.")


def is_onnx_folder(path: str | os.PathLike) -> bool:
    return (Path(path) / ONNX_MARKER).is_file()


def load(path: str | os.PathLike, precision: str | None = None):
    """A predictor for ``path``.

    ``precision``: for PyTorch folders fp32 (the default), bf16, int8 or fastest; for an ONNX
    folder fp32, int8 (when exported with ``--quantize int8``) or fastest, and by default the
    int8 model when there is one.
    """
    if is_onnx_folder(path):
        require(("onnxruntime", "tokenizers"), "an ONNX folder")
        from .onnx_predictor import OnnxPredictor  # lazy: onnxruntime (~0.3 s); the folder kind decides

        return OnnxPredictor.load(path, precision=precision)
    p = Path(path)
    if p.is_dir() and not (p / META_FILE).is_file() and not (p / "model" / META_FILE).is_file():
        from .hf_classifier import is_hf_classifier, load_hf_classifier  # lazy: torch (~2 s)

        if is_hf_classifier(p):
            return load_hf_classifier(p, precision or "fp32")
    from .predictor import Predictor  # lazy: torch (~2 s), which an ONNX folder never needs

    return Predictor.load(path, precision=precision or "fp32")
