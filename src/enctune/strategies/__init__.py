"""Strategies: which parameters move and how. ``STRATEGIES`` maps names to classes."""

from .advisor import choose_strategy, estimates
from .base import STRATEGIES, RunContext, Strategy, StrategyResult, split_outputs
from .full import FullStrategy
from .partial import PartialStrategy
from .probe import ProbeStrategy

__all__ = ["STRATEGIES", "FullStrategy", "PartialStrategy", "ProbeStrategy", "RunContext", "Strategy",
           "StrategyResult", "choose_strategy", "estimates", "split_outputs"]
