"""Strategies: which parameters move and how. ``STRATEGIES`` maps names to classes."""

from .advisor import choose_strategy
from .base import STRATEGIES, RunContext, Strategy, StrategyResult
from .full import FullStrategy
from .probe import ProbeStrategy

__all__ = ["STRATEGIES", "FullStrategy", "ProbeStrategy", "RunContext", "Strategy", "StrategyResult",
           "choose_strategy"]
