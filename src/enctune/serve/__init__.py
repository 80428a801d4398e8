"""Prediction from a model folder, HTTP serving and ONNX export.

Imports are lazy: ``enctune.serve.onnx_predictor`` and ``enctune.serve.server`` run an
exported ONNX folder without importing torch.
"""


def __getattr__(name):
    if name in ("Predictor", "embed"):
        from . import predictor  # lazy: torch (~2 s); the ONNX path never needs it

        return getattr(predictor, name)
    raise AttributeError(name)


__all__ = ["Predictor", "embed"]
