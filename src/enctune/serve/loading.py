"""``load``: any model folder enctune predicts with, by what the folder holds.

- an ONNX export (``enctune-onnx.json``, written by ``enctune export``): ``OnnxPredictor``,
  onnxruntime only, torch is not imported;
- an enctune run or model folder, or a Hugging Face sequence-classification folder:
  ``Predictor`` (PyTorch).
"""

from __future__ import annotations

import os
from pathlib import Path

ONNX_MARKER = "enctune-onnx.json"


def require(modules: tuple[str, ...], what: str) -> None:
    """UserError naming the ``serve`` extra when an optional package ``what`` needs is missing."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        from ..errors import UserError

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
        from .onnx_predictor import OnnxPredictor

        return OnnxPredictor.load(path, precision=precision)
    from .predictor import Predictor

    return Predictor.load(path, precision=precision or "fp32")
