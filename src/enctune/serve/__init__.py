"""Prediction from a model folder (and, later, HTTP serving and export)."""

from .predictor import Predictor, embed

__all__ = ["Predictor", "embed"]
